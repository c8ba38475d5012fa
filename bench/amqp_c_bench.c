// Baseline for the Swift AMQP module: the same workload through rabbitmq-c directly.
// Publishes N persistent 200-byte messages with confirms (up to 500 unconfirmed) to a fresh
// durable queue, then consumes them all with prefetch 500, acking each.
// Usage: amqp_c_bench [amqp-url] [messages]
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 500
#define BODY_SIZE 200

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void die_reply(amqp_rpc_reply_t r, const char *what) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
  fprintf(stderr, "%s failed: reply type %d, library error %s\n", what, r.reply_type,
          amqp_error_string2(r.library_error));
  exit(1);
}

static void die_status(int status, const char *what) {
  if (status == AMQP_STATUS_OK) return;
  fprintf(stderr, "%s failed: %s\n", what, amqp_error_string2(status));
  exit(1);
}

// Confirm bookkeeping, same scheme as the Swift module: tags below `lowest` are confirmed.
static uint64_t next_tag = 1, lowest = 1, nacked = 0;

static void read_confirm(amqp_connection_state_t conn, const struct timeval *timeout) {
  amqp_frame_t frame;
  int status = timeout ? amqp_simple_wait_frame_noblock(conn, &frame, timeout) : amqp_simple_wait_frame(conn, &frame);
  if (status == AMQP_STATUS_TIMEOUT) return;
  die_status(status, "wait for confirm");
  if (frame.frame_type != AMQP_FRAME_METHOD) return;
  if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD || frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
    uint64_t tag;
    amqp_boolean_t multiple;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *ack = frame.payload.method.decoded;
      tag = ack->delivery_tag;
      multiple = ack->multiple;
    } else {
      amqp_basic_nack_t *nack = frame.payload.method.decoded;
      tag = nack->delivery_tag;
      multiple = nack->multiple;
      nacked++;
    }
    // Single acks from RabbitMQ arrive in order on one channel here; multiple covers a range.
    if (tag >= lowest) lowest = multiple ? tag + 1 : (tag == lowest ? lowest + 1 : lowest);
  } else if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
             frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
    fprintf(stderr, "broker closed the channel or connection\n");
    exit(1);
  }
  amqp_maybe_release_buffers(conn);
}

int main(int argc, char **argv) {
  const char *url_arg = argc > 1 ? argv[1] : "amqp://guest:guest@127.0.0.1:5680/";
  long count = argc > 2 ? atol(argv[2]) : 200000;
  char *url = strdup(url_arg);
  struct amqp_connection_info info;
  amqp_default_connection_info(&info);
  die_status(amqp_parse_url(url, &info), "parse url");
  if (info.vhost[0] == '\0') info.vhost = "/";

  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t *socket = amqp_tcp_socket_new(conn);
  die_status(amqp_socket_open(socket, info.host, info.port), "connect");
  die_reply(amqp_login(conn, info.vhost, 2047, 131072, 30, AMQP_SASL_METHOD_PLAIN, info.user, info.password), "login");
  amqp_channel_open(conn, 1);
  die_reply(amqp_get_rpc_reply(conn), "channel.open");

  char queue_name[64];
  snprintf(queue_name, sizeof queue_name, "bench.c.%d.%ld", (int)getpid(), (long)time(NULL));
  amqp_bytes_t queue = amqp_cstring_bytes(queue_name);
  amqp_queue_declare(conn, 1, queue, 0, 1, 0, 0, amqp_empty_table);
  die_reply(amqp_get_rpc_reply(conn), "queue.declare");
  amqp_confirm_select(conn, 1);
  die_reply(amqp_get_rpc_reply(conn), "confirm.select");

  char body_bytes[BODY_SIZE];
  memset(body_bytes, 'x', sizeof body_bytes);
  amqp_bytes_t body = {BODY_SIZE, body_bytes};
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  struct timeval zero = {0, 0};

  double start = now();
  for (long i = 0; i < count; i++) {
    while (next_tag - lowest >= WINDOW) {
      read_confirm(conn, NULL);
      while (amqp_frames_enqueued(conn) || amqp_data_in_buffer(conn)) read_confirm(conn, &zero);
    }
    die_status(amqp_basic_publish(conn, 1, amqp_empty_bytes, queue, 0, 0, &props, body), "basic.publish");
    next_tag++;
  }
  while (lowest < next_tag) read_confirm(conn, NULL);
  double published = now();
  if (nacked) fprintf(stderr, "%llu nacked\n", (unsigned long long)nacked);

  amqp_basic_qos(conn, 1, 0, WINDOW, 0);
  die_reply(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume(conn, 1, queue, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  die_reply(amqp_get_rpc_reply(conn), "basic.consume");
  double consume_start = now();
  long received = 0;
  while (received < count) {
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t r = amqp_consume_message(conn, &envelope, NULL, 0);
    die_reply(r, "consume");
    if (envelope.message.body.len != BODY_SIZE) { fprintf(stderr, "bad body\n"); exit(1); }
    die_status(amqp_basic_ack(conn, 1, envelope.delivery_tag, 0), "basic.ack");
    amqp_destroy_envelope(&envelope);
    received++;
  }
  double consumed = now();

  amqp_queue_delete(conn, 1, queue, 0, 0);
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  free(url);

  double publish_rate = count / (published - start);
  double consume_rate = count / (consumed - consume_start);
  double combined_rate = count / ((published - start) + (consumed - consume_start));
  printf("RESULT impl=c messages=%ld publish=%.0f consume=%.0f combined=%.0f\n", count, publish_rate, consume_rate,
         combined_rate);
  return 0;
}
