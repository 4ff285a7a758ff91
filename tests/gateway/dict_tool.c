/*
 * dict_tool.c - a C process on the other side of the gateway's dict
 * tests: it changes the same dicts through libatrium that HTTP clients
 * read through atriumd.
 *
 *   dict_tool set PATH DICT KEY VALUE
 *       sets KEY (creating DICT if missing) to the bytes VALUE; prints
 *       "set VERSION".
 *   dict_tool update PATH DICT N
 *       sets the keys k0..k<N-1> to "1" in one commit; prints "set
 *       VERSION".
 *   dict_tool incr PATH DICT KEY N
 *       N times: reads KEY (a JSON integer; absent: 0) and sets it to
 *       one more by compare-and-set on its version, again on a conflict;
 *       prints "done VALUE" (the last value it wrote). The Python
 *       client's cross-language test (tests/python/test_containers_py.py).
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atrium.h"

static int fail(const char *what, int rv) {
  fprintf(stderr, "dict_tool: %s: %s\n", what, atr_strerror(rv));
  return 1;
}

/* incr: n compare-and-set increments of key (see the usage above). */
static int incr(const atr_handle *h, const char *key, long n) {
  char buf[32], out[32];
  long long v = 0;
  for (long i = 0; i < n;) {
    size_t len = 0;
    uint64_t version = 0, expect;
    int rv =
        atr_dict_get(h, key, strlen(key), buf, sizeof(buf) - 1, &len, &version);
    if (rv == ATR_ENOKEY) {
      v = 0;
      expect = ATR_DICT_ABSENT;
    } else if (rv != 0) {
      return fail("atr_dict_get", rv);
    } else {
      buf[len] = '\0';
      v = strtoll(buf, NULL, 10);
      expect = version;
    }
    int k = snprintf(out, sizeof(out), "%lld", v + 1);
    rv = atr_dict_set(h, key, strlen(key), out, (size_t)k, expect, NULL);
    if (rv == ATR_EVERSION || rv == ATR_EEXIST)
      continue; /* another writer came first: read again */
    if (rv < 0)
      return fail("atr_dict_set", rv);
    i++;
    v++;
  }
  printf("done %lld\n", v);
  return 0;
}

int main(int argc, char **argv) {
  atr_store *s;
  atr_handle h;
  uint64_t version;
  int rv;

  if (argc < 5 || (strcmp(argv[1], "set") != 0 && strcmp(argv[1], "update") &&
                   strcmp(argv[1], "incr")))
    return fprintf(stderr, "usage: dict_tool set|update|incr PATH DICT ...\n"),
           1;
  if ((rv = atr_store_open(argv[2], NULL, &s)) != 0)
    return fail("atr_store_open", rv);
  if ((rv = atr_dict_open(s, argv[3], ATR_CREATE, &h)) < 0)
    return fail("atr_dict_open", rv);
  if (strcmp(argv[1], "incr") == 0) {
    if (argc != 6)
      return fprintf(stderr, "usage: dict_tool incr PATH DICT KEY N\n"), 1;
    rv = incr(&h, argv[4], atol(argv[5]));
    atr_store_close(s);
    return rv;
  }
  if (strcmp(argv[1], "set") == 0) {
    if (argc != 6)
      return fprintf(stderr, "usage: dict_tool set PATH DICT KEY VALUE\n"), 1;
    rv = atr_dict_set(&h, argv[4], strlen(argv[4]), argv[5], strlen(argv[5]), 0,
                      &version);
    if (rv < 0)
      return fail("atr_dict_set", rv);
  } else {
    int n = atoi(argv[4]);
    atr_dict_op *ops = calloc((size_t)n, sizeof(*ops));
    char(*keys)[16] = calloc((size_t)n, sizeof(*keys));
    if (n <= 0 || ops == NULL || keys == NULL)
      return fail("calloc", ATR_ENOMEM);
    for (int i = 0; i < n; i++) {
      snprintf(keys[i], sizeof(keys[i]), "k%d", i);
      ops[i] = (atr_dict_op){keys[i], strlen(keys[i]), "1", 1, 0, 0};
    }
    if ((rv = atr_dict_update(&h, ops, (size_t)n, &version)) != 0)
      return fail("atr_dict_update", rv);
    free(ops);
    free(keys);
  }
  printf("set %llu\n", (unsigned long long)version);
  atr_store_close(s);
  return 0;
}
