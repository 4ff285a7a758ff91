/*
 * cli.c - `atrium`, a small command-line tool over the public API of
 * libatrium (atrium.h only), for shell users and tests.
 *
 *   atrium [--store PATH] info                 store stats and every object
 *   atrium [--store PATH] get NAME             print a value, array or queue
 *   atrium [--store PATH] set NAME TYPE VALUE  create or set a value
 *   atrium [--store PATH] add NAME DELTA       add to a value, print it
 *   atrium [--store PATH] put QUEUE TEXT       append an item (creates queue)
 *   atrium [--store PATH] pop QUEUE [TIMEOUT]  take and print the oldest item
 *   atrium [--store PATH] rm NAME              delete an object
 *
 * --shared opens a store of another user, or one that group or others
 * may write (atr_store_opts.shared): only when every user who can write it
 * is trusted.
 * The store is PATH, else $ATRIUM_STORE, else ATR_DEFAULT_PATH. Exit status:
 * 0 on success, 1 on an error (message on stderr), 2 on a usage error.
 */
#include "atrium.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

/* Room for any scalar printed by cli_format_scalar, and for a short note. */
#define CLI_SCALAR_MAX 64

static const char *cli_prog = "atrium";

static void cli_usage(FILE *out) {
  fprintf(out,
          "usage: %s [--store PATH] [--shared] COMMAND [ARGS]\n"
          "\n"
          "commands:\n"
          "  info                  store stats and every object (creates the "
          "store)\n"
          "  get NAME              print a value, an array or a queue's size\n"
          "  set NAME TYPE VALUE   create or set a value of TYPE\n"
          "  add NAME DELTA        add DELTA to a value and print the result\n"
          "  put QUEUE TEXT        append TEXT to a queue (creates the queue)\n"
          "  pop QUEUE [TIMEOUT]   take the oldest item and print it; waits up "
          "to\n"
          "                        TIMEOUT seconds (default 0, negative: for "
          "ever)\n"
          "  rm NAME               delete an object\n"
          "\n"
          "TYPE is a type code: b B h H i I l L q Q f d ? c.\n"
          "--shared opens a store of another user or one that group or "
          "others\n"
          "may write (trusting everyone who can write it).\n"
          "The store is PATH, else $ATRIUM_STORE, else %s.\n",
          cli_prog, ATR_DEFAULT_PATH);
}

/* Prints "atrium: WHAT: message" for code; adds errno's text for ESYS. */
static int cli_fail(const char *what, int code) {
  if (code == ATR_ESYS && errno != 0)
    fprintf(stderr, "%s: %s: %s (%s)\n", cli_prog, what, atr_strerror(code),
            strerror(errno));
  else
    fprintf(stderr, "%s: %s: %s\n", cli_prog, what, atr_strerror(code));
  return CLI_EXIT_ERROR;
}

static int cli_usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "%s: %s%s%s\n", cli_prog, msg, arg ? ": " : "",
          arg ? arg : "");
  fprintf(stderr, "Try '%s --help'.\n", cli_prog);
  return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------ scalars */

static int cli_type_is_signed(char type) {
  return strchr("bhilq?", type) != NULL;
}

/* The shortest %g text that reads back to v (as a float for type 'f'),
 * with ".0" added to whole numbers so that a float looks like one. */
static void cli_format_float(char type, double v, char *buf, size_t cap) {
  if (isnan(v) || isinf(v)) {
    snprintf(buf, cap, "%s", isnan(v) ? "nan" : (v < 0 ? "-inf" : "inf"));
    return;
  }
  atr_float_format(type, v, buf, cap);
  if (strpbrk(buf, ".e") == NULL && strlen(buf) + 3 <= cap)
    strcat(buf, ".0");
}

static void cli_format_scalar(char type, atr_scalar v, char *buf, size_t cap) {
  if (type == '?')
    snprintf(buf, cap, "%s", v.i ? "true" : "false");
  else if (type == 'c') {
    unsigned char byte = (unsigned char)v.u;
    if (byte >= 0x21 && byte < 0x7f && byte != '\\')
      snprintf(buf, cap, "%c", byte);
    else
      snprintf(buf, cap, "\\x%02x", byte);
  } else if (atr_type_class(type) == ATR_TFLOAT)
    cli_format_float(type, v.f, buf, cap);
  else if (cli_type_is_signed(type))
    snprintf(buf, cap, "%" PRId64, v.i);
  else
    snprintf(buf, cap, "%" PRIu64, v.u);
}

/* Parses text as an integer in base 10; 0 or ATR_ERANGE / ATR_EINVAL. */
static int cli_parse_int(const char *text, atr_scalar *out) {
  char *end;
  errno = 0;
  out->i = strtoll(text, &end, 10);
  if (end == text || *end != '\0')
    return ATR_EINVAL;
  return errno == ERANGE ? ATR_ERANGE : 0;
}

static int cli_parse_uint(const char *text, atr_scalar *out) {
  char *end;
  const char *p = text;
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '-') /* strtoull would quietly wrap "-1" round */
    return ATR_ERANGE;
  errno = 0;
  out->u = strtoull(text, &end, 10);
  if (end == text || *end != '\0')
    return ATR_EINVAL;
  return errno == ERANGE ? ATR_ERANGE : 0;
}

static int cli_parse_float(const char *text, atr_scalar *out) {
  char *end;
  out->f = strtod(text, &end);
  if (end == text || *end != '\0')
    return ATR_EINVAL;
  return 0;
}

/* Parses a VALUE of type: a number, true/false (or 1/0) for '?', one byte
 * or \xNN for 'c'. Returns 0, ATR_EINVAL or ATR_ERANGE. */
static int cli_parse_scalar(char type, const char *text, atr_scalar *out) {
  memset(out, 0, sizeof *out);
  switch (type) {
  case '?':
    if (!strcmp(text, "true") || !strcmp(text, "True") || !strcmp(text, "1"))
      out->i = 1;
    else if (!strcmp(text, "false") || !strcmp(text, "False") ||
             !strcmp(text, "0"))
      out->i = 0;
    else
      return ATR_EINVAL;
    return 0;
  case 'c':
    if (text[0] != '\0' && text[1] == '\0') {
      out->u = (unsigned char)text[0];
      return 0;
    }
    if (text[0] == '\\' && text[1] == 'x' && strlen(text) == 4) {
      char *end;
      out->u = strtoul(text + 2, &end, 16);
      return *end == '\0' ? 0 : ATR_EINVAL;
    }
    return ATR_EINVAL;
  case 'f':
  case 'd':
    return cli_parse_float(text, out);
  default:
    return cli_type_is_signed(type) ? cli_parse_int(text, out)
                                    : cli_parse_uint(text, out);
  }
}

/* ------------------------------------------------------------ objects */

/* The text of an object's state for `info`: its value, its length, or its
 * queue size. */
static void cli_describe(atr_store *store, const atr_info *info, char *buf,
                         size_t cap) {
  atr_handle h;
  atr_scalar v;

  switch (info->kind) {
  case ATR_VALUE:
    if (atr_value_open(store, info->name, info->type, 0, NULL, &h) < 0 ||
        atr_value_get(&h, &v, NULL) < 0)
      snprintf(buf, cap, "-");
    else
      cli_format_scalar(info->type, v, buf, cap);
    break;
  case ATR_ARRAY:
    snprintf(buf, cap, "length %" PRIu64, info->length);
    break;
  case ATR_QUEUE:
    if (info->maxsize)
      snprintf(buf, cap, "size %" PRIu64 " of %" PRIu64, info->size,
               info->maxsize);
    else
      snprintf(buf, cap, "size %" PRIu64, info->size);
    break;
  default:
    snprintf(buf, cap, "?");
  }
}

struct cli_list {
  atr_info *items;
  size_t count, cap;
};

static int cli_collect(const atr_info *info, void *arg) {
  struct cli_list *list = arg;
  if (list->count == list->cap) {
    size_t cap = list->cap ? list->cap * 2 : 64;
    atr_info *items = realloc(list->items, cap * sizeof *items);
    if (items == NULL)
      return ATR_ENOMEM;
    list->items = items;
    list->cap = cap;
  }
  list->items[list->count++] = *info;
  return 0;
}

static int cli_by_name(const void *a, const void *b) {
  return strcmp(((const atr_info *)a)->name, ((const atr_info *)b)->name);
}

static void cli_print_bytes(const char *label, uint64_t bytes) {
  printf("%-9s %.1f MiB (%" PRIu64 " bytes)", label,
         (double)bytes / (1024.0 * 1024.0), bytes);
}

static int cli_info(atr_store *store, const char *path, int created) {
  atr_store_stats stats;
  struct cli_list list = {0};
  char state[CLI_SCALAR_MAX];
  char version[24];
  int name_w = 4, version_w = 7, rv;
  double percent_used = 0;
  size_t k;

  if ((rv = atr_store_stats_get(store, &stats)) < 0)
    return cli_fail(path, rv);
  if ((rv = atr_list(store, cli_collect, &list)) != 0) {
    free(list.items);
    return cli_fail(path, rv);
  }
  if (list.count > 1) /* qsort wants a non-NULL array, even of none */
    qsort(list.items, list.count, sizeof *list.items, cli_by_name);
  if (stats.capacity)
    percent_used = 100.0 * (double)stats.used / (double)stats.capacity;

  printf("%-9s %s%s\n", "store", path, created ? " (created)" : "");
  cli_print_bytes("capacity", stats.capacity);
  printf("\n");
  cli_print_bytes("used", stats.used);
  printf(", %.1f%%\n", percent_used);
  printf("%-9s %" PRIu64 " of %" PRIu64 "\n", "objects", stats.objects,
         stats.max_objects);
  if (list.count == 0) {
    printf("\n(no objects)\n");
    free(list.items);
    return 0;
  }

  for (k = 0; k < list.count; k++) {
    int len = (int)strlen(list.items[k].name);
    int vlen =
        snprintf(version, sizeof version, "%" PRIu64, list.items[k].version);
    name_w = len > name_w ? len : name_w;
    version_w = vlen > version_w ? vlen : version_w;
  }
  printf("\n%-*s  %-5s  %-4s  %*s  %s\n", name_w, "NAME", "KIND", "TYPE",
         version_w, "VERSION", "STATE");
  for (k = 0; k < list.count; k++) {
    const atr_info *info = &list.items[k];
    char type[2] = {info->type ? info->type : '-', '\0'};
    cli_describe(store, info, state, sizeof state);
    printf("%-*s  %-5s  %-4s  %*" PRIu64 "  %s\n", name_w, info->name,
           atr_kind_name(info->kind), type, version_w, info->version, state);
  }
  free(list.items);
  return 0;
}

static int cli_get_array(atr_store *store, const char *name) {
  atr_handle h;
  atr_scalar *values;
  char text[CLI_SCALAR_MAX];
  uint64_t length, n, k;
  int rv;

  if ((rv = atr_array_open(store, name, 0, 0, 0, NULL, &h)) < 0 ||
      (rv = atr_array_length(&h, &length)) < 0)
    return cli_fail(name, rv);
  if ((values = calloc(length ? length : 1, sizeof *values)) == NULL)
    return cli_fail(name, ATR_ENOMEM);
  if ((rv = atr_array_get(&h, 0, INT64_MAX, values, length, &n, NULL)) < 0) {
    free(values);
    return cli_fail(name, rv);
  }
  for (k = 0; k < n; k++) {
    cli_format_scalar(h.type, values[k], text, sizeof text);
    printf("%s%s", k ? " " : "", text);
  }
  printf("\n");
  free(values);
  return 0;
}

static int cli_get(atr_store *store, const char *name) {
  atr_info info;
  atr_handle h;
  atr_scalar v;
  char text[CLI_SCALAR_MAX];
  int rv;

  if ((rv = atr_stat(store, name, &info)) < 0)
    return cli_fail(name, rv);
  switch (info.kind) {
  case ATR_VALUE:
    if ((rv = atr_value_open(store, name, 0, 0, NULL, &h)) < 0 ||
        (rv = atr_value_get(&h, &v, NULL)) < 0)
      return cli_fail(name, rv);
    cli_format_scalar(h.type, v, text, sizeof text);
    printf("%s\n", text);
    return 0;
  case ATR_ARRAY:
    return cli_get_array(store, name);
  case ATR_QUEUE:
    printf("size %" PRIu64 " maxsize %" PRIu64 " bytes %" PRIu64 "\n",
           info.size, info.maxsize, info.bytes);
    return 0;
  default:
    return cli_fail(name, ATR_EKIND);
  }
}

static int cli_set(atr_store *store, const char *name, const char *type_arg,
                   const char *text) {
  atr_handle h;
  atr_scalar v;
  char type = type_arg[0];
  int rv;

  if (type_arg[1] != '\0' || atr_type_size(type) == 0)
    return cli_usage_error("not a type code (b B h H i I l L q Q f d ? c)",
                           type_arg);
  if ((rv = cli_parse_scalar(type, text, &v)) < 0) {
    if (rv == ATR_EINVAL)
      return cli_usage_error("not a value of that type", text);
    return cli_fail(name, rv);
  }
  if ((rv = atr_value_open(store, name, type, ATR_CREATE, &v, &h)) < 0)
    return cli_fail(name, rv);
  if (rv == ATR_CREATED)
    return 0;
  if ((rv = atr_value_set(&h, v, 0, NULL)) < 0)
    return cli_fail(name, rv);
  return 0;
}

static int cli_add(atr_store *store, const char *name, const char *text) {
  atr_handle h;
  atr_scalar delta, v;
  char out[CLI_SCALAR_MAX];
  int rv;

  if ((rv = atr_value_open(store, name, 0, 0, NULL, &h)) < 0)
    return cli_fail(name, rv);
  rv = atr_type_class(h.type) == ATR_TFLOAT ? cli_parse_float(text, &delta)
                                            : cli_parse_int(text, &delta);
  if (rv == ATR_EINVAL)
    return cli_usage_error("not a number", text);
  if (rv < 0)
    return cli_fail(name, rv);
  if ((rv = atr_value_add(&h, delta, &v, NULL)) < 0)
    return cli_fail(name, rv);
  cli_format_scalar(h.type, v, out, sizeof out);
  printf("%s\n", out);
  return 0;
}

static int cli_put(atr_store *store, const char *name, const char *text) {
  atr_handle h;
  int rv;

  if ((rv = atr_queue_open(store, name, ATR_CREATE, NULL, &h)) < 0 ||
      (rv = atr_queue_put(&h, text, strlen(text), 0)) < 0)
    return cli_fail(name, rv);
  return 0;
}

static int cli_pop(atr_store *store, const char *name, const char *timeout) {
  atr_handle h;
  atr_items items = {0};
  double seconds = 0;
  int rv;

  if (timeout != NULL) {
    char *end;
    seconds = strtod(timeout, &end);
    if (end == timeout || *end != '\0' || isnan(seconds))
      return cli_usage_error("not a timeout in seconds", timeout);
  }
  if ((rv = atr_queue_open(store, name, 0, NULL, &h)) < 0 ||
      (rv = atr_queue_get_batch(&h, 1, seconds, &items)) < 0) {
    atr_items_free(&items);
    return cli_fail(name, rv);
  }
  fwrite(items.data + items.off[0], 1, items.len[0], stdout);
  fputc('\n', stdout);
  atr_items_free(&items);
  return 0;
}

/* ------------------------------------------------------------ commands */

/* The command table: name, arguments taken (min, max), whether the store is
 * created when missing. Arity is checked here, once, before any command. */
enum cli_cmd { CLI_INFO, CLI_GET, CLI_SET, CLI_ADD, CLI_PUT, CLI_POP, CLI_RM };

static const struct cli_command {
  const char *name;
  enum cli_cmd cmd;
  int min_args, max_args;
  int create_store;
} cli_commands[] = {
    {"info", CLI_INFO, 0, 0, 1}, {"get", CLI_GET, 1, 1, 0},
    {"set", CLI_SET, 3, 3, 1},   {"add", CLI_ADD, 2, 2, 0},
    {"put", CLI_PUT, 2, 2, 1},   {"pop", CLI_POP, 1, 2, 0},
    {"rm", CLI_RM, 1, 1, 0},
};

static int cli_run(const struct cli_command *c, atr_store *store,
                   const char *path, int created, char **args, int nargs) {
  int rv;

  switch (c->cmd) {
  case CLI_INFO:
    return cli_info(store, path, created);
  case CLI_GET:
    return cli_get(store, args[0]);
  case CLI_SET:
    return cli_set(store, args[0], args[1], args[2]);
  case CLI_ADD:
    return cli_add(store, args[0], args[1]);
  case CLI_PUT:
    return cli_put(store, args[0], args[1]);
  case CLI_POP:
    return cli_pop(store, args[0], nargs > 1 ? args[1] : NULL);
  case CLI_RM:
    if ((rv = atr_delete(store, args[0], ATR_ANY)) < 0)
      return cli_fail(args[0], rv);
    return 0;
  }
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
  const char *path = getenv("ATRIUM_STORE");
  const struct cli_command *c = NULL;
  atr_store_opts opts;
  atr_store *store = NULL;
  int argi = 1, nargs, created, rv, shared = 0;
  size_t k;

  if (path == NULL || path[0] == '\0')
    path = ATR_DEFAULT_PATH;
  while (argi < argc && argv[argi][0] == '-') {
    const char *arg = argv[argi];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      cli_usage(stdout);
      return 0;
    } else if (!strcmp(arg, "--store") || !strcmp(arg, "-s")) {
      if (argi + 1 >= argc)
        return cli_usage_error("option needs a path", arg);
      path = argv[argi + 1];
      argi += 2;
    } else if (!strncmp(arg, "--store=", 8)) {
      path = arg + 8;
      argi++;
    } else if (!strcmp(arg, "--shared")) {
      shared = 1;
      argi++;
    } else if (!strcmp(arg, "--")) {
      argi++;
      break;
    } else {
      return cli_usage_error("unknown option", arg);
    }
  }
  if (argi >= argc) {
    cli_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  for (k = 0; k < sizeof cli_commands / sizeof cli_commands[0]; k++)
    if (!strcmp(argv[argi], cli_commands[k].name))
      c = &cli_commands[k];
  if (c == NULL)
    return cli_usage_error("unknown command", argv[argi]);
  nargs = argc - argi - 1;
  if (nargs < c->min_args || nargs > c->max_args)
    return cli_usage_error("wrong number of arguments for", c->name);
  if (path[0] == '\0')
    return cli_usage_error("empty store path", NULL);

  atr_store_opts_init(&opts);
  opts.open_only = !c->create_store;
  opts.shared = shared;
  created = c->create_store && access(path, F_OK) != 0;
  errno = 0;
  if ((rv = atr_store_open(path, &opts, &store)) < 0) {
    if (rv == ATR_ENOENT)
      fprintf(stderr, "%s: %s: no store there yet\n", cli_prog, path);
    else
      cli_fail(path, rv);
    return CLI_EXIT_ERROR;
  }
  rv = cli_run(c, store, path, created, argv + argi + 1, nargs);
  atr_store_close(store);
  if (fflush(stdout) != 0 && rv == 0) {
    fprintf(stderr, "%s: write error: %s\n", cli_prog, strerror(errno));
    rv = CLI_EXIT_ERROR;
  }
  return rv;
}
