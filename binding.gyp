{
  "targets": [
    {
      "target_name": "bind_device",
      "sources": ["src/dhcp/native/bind_device.c"],
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
    }
  ]
}
