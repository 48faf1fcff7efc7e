{
  "targets": [
    {
      "target_name": "fleetboot_dhcp_io",
      "sources": ["src/dhcp/native/dhcp_io.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "fleetboot_sendfile",
      "sources": ["src/platforms/native/sendfile.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "fleetboot_tftp",
      "sources": ["src/tftp/native/tftp_data.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-lm", "-lpthread"]
    },
    {
      "target_name": "fleetboot_notify",
      "sources": ["src/service/native/notify.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
