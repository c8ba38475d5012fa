"""A TCP forwarder standing in for a service name (a Kubernetes Service, a DNS name, a proxy)
in front of a database that moves: each new connection goes to 127.0.0.1 at the port
written in TARGET_FILE when it arrives; connections already made stay where they are.

Usage: python3 tcp_forward.py LISTEN_PORT TARGET_FILE   (prints "ready" once listening)
"""
import socket
import sys
import threading


def pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def main():
    listen_port, target_file = int(sys.argv[1]), sys.argv[2]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(256)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        with open(target_file) as f:
            port = int(f.read().strip())
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    main()
