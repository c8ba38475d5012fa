// Esteira's window onto rabbitmq-c. Only what Swift cannot call directly lives here.
#ifndef ESTEIRA_CRABBITMQ_SHIM_H
#define ESTEIRA_CRABBITMQ_SHIM_H

// rabbitmq-c >= 0.12 moved its headers under rabbitmq-c/; Debian 12 ships 0.11.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif
#include <sys/time.h>

// amqp_login is variadic (its SASL arguments follow `...`), which Swift cannot call.
static inline amqp_rpc_reply_t CRabbitMQ_login_plain(amqp_connection_state_t state, const char *vhost,
                                                     int channel_max, int frame_max, int heartbeat,
                                                     const char *user, const char *password) {
  return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

// Same, with client properties (connection_name, capabilities) shown in the management UI.
static inline amqp_rpc_reply_t CRabbitMQ_login_plain_with_properties(amqp_connection_state_t state, const char *vhost,
                                                                     int channel_max, int frame_max, int heartbeat,
                                                                     const amqp_table_t *properties,
                                                                     const char *user, const char *password) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                    AMQP_SASL_METHOD_PLAIN, user, password);
}

#endif
