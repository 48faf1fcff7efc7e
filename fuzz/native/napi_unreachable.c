// Node-API entry points the addons link against but the harnesses never reach (argument
// parsing, module setup, completion callbacks): each aborts, so a harness that did reach
// one fails loudly. Weak, so a harness defines the few it drives with their real signatures
// (node_api.h) and those win at link time.
#include <stdio.h>
#include <stdlib.h>

#define UNREACHABLE(name)                                                   \
  __attribute__((weak)) void name(void);                                    \
  __attribute__((weak)) void name(void) {                                   \
    fprintf(stderr, "fuzz harness: %s reached, which it never should\n", #name); \
    abort();                                                                \
  }

UNREACHABLE(napi_async_destroy)
UNREACHABLE(napi_async_init)
UNREACHABLE(napi_call_function)
UNREACHABLE(napi_call_threadsafe_function)
UNREACHABLE(napi_close_handle_scope)
UNREACHABLE(napi_create_double)
UNREACHABLE(napi_create_external)
UNREACHABLE(napi_create_function)
UNREACHABLE(napi_create_int32)
UNREACHABLE(napi_create_reference)
UNREACHABLE(napi_create_string_utf8)
UNREACHABLE(napi_create_threadsafe_function)
UNREACHABLE(napi_create_uint32)
UNREACHABLE(napi_define_properties)
UNREACHABLE(napi_delete_reference)
UNREACHABLE(napi_fatal_exception)
UNREACHABLE(napi_get_and_clear_last_exception)
UNREACHABLE(napi_get_array_length)
UNREACHABLE(napi_get_boolean)
UNREACHABLE(napi_get_buffer_info)
UNREACHABLE(napi_get_cb_info)
UNREACHABLE(napi_get_element)
UNREACHABLE(napi_get_global)
UNREACHABLE(napi_get_named_property)
UNREACHABLE(napi_get_reference_value)
UNREACHABLE(napi_get_typedarray_info)
UNREACHABLE(napi_get_uv_event_loop)
UNREACHABLE(napi_get_value_double)
UNREACHABLE(napi_get_value_external)
UNREACHABLE(napi_get_value_int32)
UNREACHABLE(napi_get_value_string_utf8)
UNREACHABLE(napi_get_value_uint32)
UNREACHABLE(napi_has_named_property)
UNREACHABLE(napi_is_buffer)
UNREACHABLE(napi_make_callback)
UNREACHABLE(napi_open_handle_scope)
UNREACHABLE(napi_release_threadsafe_function)
UNREACHABLE(napi_set_named_property)
UNREACHABLE(napi_throw_error)
UNREACHABLE(napi_throw_type_error)
UNREACHABLE(napi_typeof)
UNREACHABLE(uv_close)
UNREACHABLE(uv_poll_init)
UNREACHABLE(uv_poll_start)
UNREACHABLE(uv_poll_stop)
