/*
 * scalar.c - Python's type codes: ranges, checked adds, element access.
 * Integers are kept as int64 (signed codes, '?') or uint64 (unsigned
 * codes, 'c'); floats as double, a 'f' always holding a float's value.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ATR__EXPORT size_t atr_type_size(char type) {
  switch (type) {
  case 'b':
  case 'B':
  case '?':
  case 'c':
    return 1;
  case 'h':
  case 'H':
    return 2;
  case 'i':
  case 'I':
  case 'f':
    return 4;
  case 'l':
  case 'L':
  case 'q':
  case 'Q':
  case 'd':
    return 8;
  default:
    return 0;
  }
}

ATR__EXPORT atr_tclass atr_type_class(char type) {
  switch (type) {
  case 'b':
  case 'h':
  case 'i':
  case 'l':
  case 'q':
  case '?':
    return ATR_TINT;
  case 'B':
  case 'H':
  case 'I':
  case 'L':
  case 'Q':
  case 'c':
    return ATR_TUINT;
  case 'f':
  case 'd':
    return ATR_TFLOAT;
  default:
    return ATR_TNONE;
  }
}

ATR__EXPORT int atr_float_format(char type, double v, char *buf, size_t cap) {
  /* Any decimal of up to 15 digits survives a trip through a normal
   * double, so a shorter text that reads back is also what %.15g prints;
   * a float, or a subnormal double, holds fewer digits and may need
   * fewer. */
  int prec = type != 'f' && fpclassify(v) == FP_NORMAL ? 15 : 1;
  int n = 0;
  for (; prec < 17; prec++) {
    n = snprintf(buf, cap, "%.*g", prec, v);
    if (type == 'f' ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
      return n;
  }
  return snprintf(buf, cap, "%.17g", v);
}

static int64_t scal_smin(char type) {
  return atr_type_size(type) == 8
             ? INT64_MIN
             : -((int64_t)1 << (8 * atr_type_size(type) - 1));
}

static int64_t scal_smax(char type) {
  return atr_type_size(type) == 8
             ? INT64_MAX
             : ((int64_t)1 << (8 * atr_type_size(type) - 1)) - 1;
}

static uint64_t scal_umax(char type) {
  return atr_type_size(type) == 8
             ? UINT64_MAX
             : ((uint64_t)1 << (8 * atr_type_size(type))) - 1;
}

/* Whether x rounds to a finite float, as Python's struct does it: below
 * the midpoint between FLT_MAX and 2^128 it rounds to at most FLT_MAX. */
static bool scal_fits_float(double x) {
  return isfinite(x) && fabs(x) < 0x1.ffffffp+127;
}

int atr__scalar_check(char type, atr_scalar *v) {
  if (type == '?')
    return v->i == 0 || v->i == 1 ? 0 : ATR_ERANGE;
  switch (atr_type_class(type)) {
  case ATR_TINT:
    return v->i >= scal_smin(type) && v->i <= scal_smax(type) ? 0 : ATR_ERANGE;
  case ATR_TUINT: /* 'c' too: one byte */
    return v->u <= scal_umax(type) ? 0 : ATR_ERANGE;
  case ATR_TFLOAT:
    if (type == 'd')
      return isfinite(v->f) ? 0 : ATR_ERANGE;
    if (!scal_fits_float(v->f))
      return ATR_ERANGE;
    v->f = (float)v->f;
    return 0;
  default:
    return ATR_ETYPE;
  }
}

int atr__scalar_add(char type, atr_scalar cur, atr_scalar delta,
                    atr_scalar *out) {
  bool wrapped;
  if (type == '?' || type == 'c')
    return ATR_ETYPE; /* a bool and a byte do not add */
  switch (atr_type_class(type)) {
  case ATR_TINT:
    if (__builtin_add_overflow(cur.i, delta.i, &out->i))
      return ATR_EOVERFLOW;
    return out->i >= scal_smin(type) && out->i <= scal_smax(type)
               ? 0
               : ATR_EOVERFLOW;
  case ATR_TUINT:
    if (delta.i >= 0)
      wrapped = __builtin_add_overflow(cur.u, (uint64_t)delta.i, &out->u);
    else
      wrapped = __builtin_sub_overflow(cur.u, -(uint64_t)delta.i, &out->u);
    return !wrapped && out->u <= scal_umax(type) ? 0 : ATR_EOVERFLOW;
  case ATR_TFLOAT:
    out->f = cur.f + delta.f;
    if (!isfinite(out->f) || (type == 'f' && !scal_fits_float(out->f)))
      return ATR_EOVERFLOW;
    if (type == 'f')
      out->f = (float)out->f;
    return 0;
  default:
    return ATR_ETYPE;
  }
}

/* Elements are stored little-endian, as the machine does (x86-64). */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian");

atr_scalar atr__elem_load(char type, const void *p) {
  atr_scalar v = {0};
  size_t size = atr_type_size(type);
  switch (atr_type_class(type)) {
  case ATR_TINT:
  case ATR_TUINT:
    memcpy(&v.u, p, size);
    /* Sign-extend the signed codes ('?' holds 0 or 1). */
    if (atr_type_class(type) == ATR_TINT && type != '?' && size < 8) {
      unsigned shift = 64 - 8 * (unsigned)size;
      v.i = (int64_t)(v.u << shift) >> shift;
    }
    break;
  case ATR_TFLOAT:
    if (type == 'f') {
      float x;
      memcpy(&x, p, 4);
      v.f = x;
    } else {
      memcpy(&v.f, p, 8);
    }
    break;
  default:
    break;
  }
  return v;
}

/* v has passed atr__scalar_check for type. */
void atr__elem_store(char type, void *p, atr_scalar v) {
  switch (atr_type_class(type)) {
  case ATR_TINT:
  case ATR_TUINT:
    memcpy(p, &v.u, atr_type_size(type)); /* the low bytes */
    break;
  case ATR_TFLOAT:
    if (type == 'f') {
      float x = (float)v.f;
      memcpy(p, &x, 4);
    } else {
      memcpy(p, &v.f, 8);
    }
    break;
  default:
    break;
  }
}
