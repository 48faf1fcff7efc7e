/* Multiboot 1 header (Multiboot Specification 0.6.96 §3.1.1) and Multiboot2 header (Multiboot2
   Specification §3.1.1), then the entry: the loader leaves the magic in %eax and the boot information in %ebx. */
.section .multiboot, "a"
.align 4
.long 0x1BADB002
.long 0x00000003
.long -(0x1BADB002 + 0x00000003)
.align 8
mb2:
.long 0xE85250D6
.long 0
.long mb2_end - mb2
.long -(0xE85250D6 + 0 + (mb2_end - mb2))
.short 0
.short 0
.long 8
mb2_end:
.section .note.GNU-stack, "", @progbits
.section .text
.globl _start
_start:
  mov $stack_top, %esp
  push %ebx
  push %eax
  call kmain
1: hlt
  jmp 1b
.section .bss
.align 16
.skip 16384
stack_top:
