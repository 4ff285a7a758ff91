/* error.c - error strings and names, name checks, op names. */
#include "internal.h"

ATR__EXPORT const char *atr_strerror(int code) {
  switch (code) {
  case ATR_OK:
    return "success";
#define ATR__MSG(name, msg)                                                    \
  case ATR_##name:                                                             \
    return msg;
    ATR_ERRNO_MAP(ATR__MSG)
#undef ATR__MSG
  default:
    return "unknown error";
  }
}

ATR__EXPORT const char *atr_errname(int code) {
  switch (code) {
  case ATR_OK:
    return "OK";
#define ATR__NAME(name, msg)                                                   \
  case ATR_##name:                                                             \
    return #name;
    ATR_ERRNO_MAP(ATR__NAME)
#undef ATR__NAME
  default:
    return "EUNKNOWN";
  }
}

ATR__EXPORT int atr_name_check(const char *name, size_t len) {
  if (name == NULL || len == 0 || len > ATR_NAME_MAX)
    return ATR_ENAME;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok)
      return ATR_ENAME;
  }
  return 0;
}

ATR__EXPORT const char *atr_op_name(atr_op op) {
  static const char *const names[] = {
      [ATR_OP_CREATED] = "created",
      [ATR_OP_DELETED] = "deleted",
      [ATR_OP_SET] = "set",
      [ATR_OP_ADD] = "add",
      [ATR_OP_PUT] = "put",
      [ATR_OP_POP] = "pop",
      [ATR_OP_CLEAR] = "clear",
      [ATR_OP_ACQUIRED] = "acquired",
      [ATR_OP_RELEASED] = "released",
      [ATR_OP_EXPIRED] = "expired",
      [ATR_OP_ABANDONED] = "abandoned",
      [ATR_OP_WAIT] = "wait",
      [ATR_OP_PASSED] = "passed",
      [ATR_OP_BROKEN] = "broken",
      [ATR_OP_RESET] = "reset",
      [ATR_OP_NOTIFY] = "notify",
      [ATR_OP_LEASED] = "leased",
      [ATR_OP_ACKED] = "acked",
      [ATR_OP_NACKED] = "nacked",
      [ATR_OP_DONE] = "done",
      [ATR_OP_DELETE] = "delete",
  };
  if (op < ATR_OP_CREATED || op > ATR_OP_DELETE)
    return "unknown";
  return names[op];
}
