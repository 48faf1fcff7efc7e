/* A multiboot (v1 and v2) test kernel standing in for illumos unix on a SmartOS platform key:
   prints its command line and each module's string and first bytes to COM1, then halts.
   Multiboot Specification 0.6.96 §3.3 (boot information) and Multiboot2 Specification §3.6 (tags). */
typedef unsigned int u32;
typedef unsigned char u8;
static inline void outb(unsigned short p, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(p)); }
static inline u8 inb(unsigned short p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static void putc_(char c) { while (!(inb(0x3fd) & 0x20)) {} outb(0x3f8, (u8)c); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void putn(const u8 *p, u32 n) { for (u32 i = 0; i < n && p[i]; i++) putc_(p[i] == '\n' ? ' ' : (char)p[i]); }
static void init_serial(void) { outb(0x3f9, 0); outb(0x3fb, 0x80); outb(0x3f8, 1); outb(0x3f9, 0); outb(0x3fb, 3); outb(0x3fa, 0xc7); }
static void module(const char *s, const u8 *start, const u8 *end) {
  puts_("mbtest: module "); puts_(s); puts_(" data "); putn(start, (u32)(end - start) < 48 ? (u32)(end - start) : 48); puts_("\n");
}
void kmain(u32 magic, u32 info) {
  init_serial();
  if (magic == 0x2BADB002) {
    const u32 *mbi = (const u32 *)info;
    puts_("mbtest: multiboot1 cmdline ");
    if (mbi[0] & 4) puts_((const char *)mbi[4]);
    puts_("\n");
    if (mbi[0] & 8) { const u32 *m = (const u32 *)mbi[6]; for (u32 i = 0; i < mbi[5]; i++, m += 4) module((const char *)m[2], (const u8 *)m[0], (const u8 *)m[1]); }
  } else if (magic == 0x36d76289) {
    puts_("mbtest: multiboot2");
    const u8 *t = (const u8 *)info + 8;
    for (;;) {
      u32 type = ((const u32 *)t)[0], size = ((const u32 *)t)[1];
      if (type == 0) break;
      if (type == 1) { puts_(" cmdline "); puts_((const char *)(t + 8)); puts_("\n"); }
      if (type == 3) module((const char *)(t + 16), (const u8 *)((const u32 *)t)[2], (const u8 *)((const u32 *)t)[3]);
      t += (size + 7) & ~7u;
    }
  } else {
    puts_("mbtest: unknown magic\n");
  }
  puts_("mbtest: done\n");
  for (;;) __asm__ volatile("cli; hlt");
}
