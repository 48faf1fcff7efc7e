// setsockopt(SO_BINDTODEVICE) for Node's dgram sockets (socket(7)). Node's dgram cannot bind
// a socket to a network device nor report the arrival interface (NETBOOT-NOTES pitfall 8),
// so the DHCP server opens one socket per admin interface and binds each to its device:
// the kernel then delivers only that interface's packets (broadcasts included) to it, and
// sends its replies, limited broadcasts too, out of that interface without needing a route
// (pitfall 1). Needs CAP_NET_RAW (root) to bind, as the kernel checks in sock_setbindtodevice.
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

// bindToDevice(fd: number, ifname: string): void
static napi_value bind_to_device(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2)
    return throw_error(env, "bindToDevice(fd, ifname) takes two arguments");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_error(env, "bindToDevice: fd must be a non-negative integer");
  char ifname[IFNAMSIZ];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], ifname, sizeof ifname, &len) != napi_ok || len == 0 || len >= IFNAMSIZ - 1)
    return throw_error(env, "bindToDevice: ifname must be a non-empty interface name shorter than 16 bytes");
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)(len + 1)) != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "SO_BINDTODEVICE %s: %s", ifname, strerror(errno));
    return throw_error(env, msg);
  }
  return NULL;
}

// boundDevice(fd: number): string  (what SO_BINDTODEVICE is set to; "" when unbound)
static napi_value bound_device(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok)
    return throw_error(env, "boundDevice(fd) takes a file descriptor");
  char ifname[IFNAMSIZ] = {0};
  socklen_t len = sizeof ifname;
  if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, &len) != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "getsockopt SO_BINDTODEVICE: %s", strerror(errno));
    return throw_error(env, msg);
  }
  napi_value out;
  napi_create_string_utf8(env, ifname, strnlen(ifname, sizeof ifname), &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"bindToDevice", NULL, bind_to_device, NULL, NULL, NULL, napi_default, NULL},
    {"boundDevice", NULL, bound_device, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
