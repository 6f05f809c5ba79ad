/* glibc 2.38 added C23 variants of the strtol and scanf families (C23 also parses "0b" binary
 * prefixes); code compiled against glibc >= 2.38 calls them. Debian 13's LLVM archives are such
 * code; these wrappers let them link against glibc 2.36 (Debian 12). LLVM never passes "0b"
 * strings to these functions, so the C17 behaviour is the same for it.
 * Used by scripts/build-cuda-offline.sh. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
long long __isoc23_strtoll(const char *s, char **end, int base) { return strtoll(s, end, base); }
unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }
unsigned long long __isoc23_strtoull(const char *s, char **end, int base) {
  return strtoull(s, end, base);
}

int __isoc23_sscanf(const char *s, const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vsscanf(s, format, args);
  va_end(args);
  return n;
}

int __isoc23_scanf(const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vscanf(format, args);
  va_end(args);
  return n;
}
