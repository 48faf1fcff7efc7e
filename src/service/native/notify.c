// sd_notify(3)'s wire protocol, which Node cannot speak itself (its dgram module has no
// AF_UNIX): one datagram of newline-separated KEY=VALUE assignments to the AF_UNIX socket
// named by $NOTIFY_SOCKET; a leading '@' names an abstract socket (unix(7), sun_path[0] = 0).
//
// notify(socketPath, message) -> errno (0 when the datagram was sent).
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static napi_value js_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char message[4096];
  size_t path_len = 0, message_len = 0;
  int err = 0;
  if (argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], message, sizeof(message), &message_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "notify(socketPath: string, message: string)");
    return NULL;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path_len == 0 || path_len >= sizeof(addr.sun_path) || (path[0] != '/' && path[0] != '@')) {
    err = EINVAL;
  } else if (message_len + 1 >= sizeof(message)) {
    err = EMSGSIZE;
  } else {
    memcpy(addr.sun_path, path, path_len);
    if (path[0] == '@') addr.sun_path[0] = '\0';
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
    } else {
      if (sendto(fd, message, message_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len) < 0) err = errno;
      close(fd);
    }
  }
  napi_value result;
  napi_create_int32(env, err, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "notify", NAPI_AUTO_LENGTH, js_notify, NULL, &fn);
  napi_set_named_property(env, exports, "notify", fn);
  return exports;
}
