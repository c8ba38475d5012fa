// Esteira's window onto libcurl. curl_easy_setopt and curl_easy_getinfo are variadic, which
// Swift cannot call: one typed shim per argument kind.
#ifndef ESTEIRA_CCURL_SHIM_H
#define ESTEIRA_CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*CCurl_data_callback)(char *data, size_t size, size_t count, void *userdata);

static inline CURLcode CCurl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
  return curl_easy_setopt(handle, option, value);
}
// For CURLOPT_WRITEFUNCTION, CURLOPT_HEADERFUNCTION and CURLOPT_READFUNCTION.
static inline CURLcode CCurl_easy_setopt_data_function(CURL *handle, CURLoption option, CCurl_data_callback value) {
  return curl_easy_setopt(handle, option, value);
}
// CURLOPT_XFERINFOFUNCTION has its own callback type; Esteira uses it to abort a transfer
// whose Swift task was cancelled.
typedef int (*CCurl_xferinfo_callback)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                       curl_off_t ultotal, curl_off_t ulnow);
static inline CURLcode CCurl_easy_setopt_xferinfo_function(CURL *handle, CCurl_xferinfo_callback value) {
  return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, value);
}
// CURLOPT_OPENSOCKETFUNCTION: curl asks it for every socket it connects, with the address it
// resolved; Esteira refuses addresses a request's outbound policy does not allow there, at
// connect time, so a name that resolves elsewhere later (DNS rebinding) is checked again.
typedef curl_socket_t (*CCurl_opensocket_callback)(void *clientp, curlsocktype purpose, struct curl_sockaddr *address);
static inline CURLcode CCurl_easy_setopt_opensocket_function(CURL *handle, CCurl_opensocket_callback value) {
  return curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, value);
}
// The address curl passes sits in a struct sockaddr field that is too small for IPv6: read it
// through its own pointer rather than as a copied Swift struct.
static inline const struct sockaddr *CCurl_sockaddr_address(const struct curl_sockaddr *address) {
  return &address->addr;
}
static inline CURLcode CCurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
  return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode CCurl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value) {
  return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode CCurl_easy_getinfo_string(CURL *handle, CURLINFO info, char **value) {
  return curl_easy_getinfo(handle, info, value);
}
#endif
