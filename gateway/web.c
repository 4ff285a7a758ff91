/*
 * web.c - the dashboard: the files of web/, compiled into atriumd by the
 * Makefile (gw_web_files), served at / (index.html) and /web/{name}.
 *
 * The files hold no data, so they need no token: the page asks for one
 * when /v1 answers 401. Each answer carries the file's content type (by
 * its extension), its ETag (a cksum made at build time; If-None-Match
 * gives 304), and nosniff; HTML also gets a Content-Security-Policy that
 * allows only this origin, so no inline script or style can run.
 */
#include <string.h>

#include "routes.h"

#define WEB_CSP                                                                \
  "default-src 'self'; base-uri 'none'; form-action 'self'; "                  \
  "frame-ancestors 'none'"

static const struct {
  const char *ext;
  const char *ctype;
} web_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},
};

/* The content type of a file name, by its extension. */
static const char *web_ctype(const char *name) {
  const char *dot = strrchr(name, '.');

  if (dot != NULL)
    for (size_t i = 0; i < sizeof(web_types) / sizeof(web_types[0]); i++)
      if (strcmp(dot, web_types[i].ext) == 0)
        return web_types[i].ctype;
  return "application/octet-stream";
}

static const struct gw_web_file *web_find(const char *name) {
  for (const struct gw_web_file *f = gw_web_files; f->name != NULL; f++)
    if (strcmp(f->name, name) == 0)
      return f;
  return NULL;
}

/* 1 if an If-None-Match list names etag (or is "*"). */
static int web_not_modified(struct gw_req *req, const char *etag) {
  const char *inm = gw_req_header(req, "If-None-Match");
  size_t n = strlen(etag);

  if (inm == NULL)
    return 0;
  for (const char *p = inm; *p != '\0';) {
    while (*p == ' ' || *p == ',')
      p++;
    if (strncmp(p, "W/", 2) == 0)
      p += 2;
    if (*p == '*' || (strncmp(p, etag, n) == 0 &&
                      (p[n] == '\0' || p[n] == ',' || p[n] == ' ')))
      return 1;
    while (*p != '\0' && *p != ',')
      p++;
  }
  return 0;
}

static int web_serve(struct gw_req *req, const char *name) {
  const struct gw_web_file *f = web_find(name);
  const char *ctype;
  int html;

  if (f == NULL)
    return gw_reply_error(req, 404, "not_found", "no such file");
  ctype = web_ctype(f->name);
  html = strncmp(ctype, "text/html", 9) == 0;
  {
    /* no-cache: the browser keeps the file but asks (ETag) every time, so
     * a new atriumd never runs with an old app.js. */
    const char *hdrs[] = {"ETag",
                          f->etag,
                          "Cache-Control",
                          "no-cache",
                          "X-Content-Type-Options",
                          "nosniff",
                          "Referrer-Policy",
                          "no-referrer",
                          html ? "Content-Security-Policy" : NULL,
                          WEB_CSP,
                          NULL};
    if (web_not_modified(req, f->etag))
      return gw_reply_static(req, 304, NULL, 0, NULL, hdrs);
    return gw_reply_static(req, 200, f->data, f->len, ctype, hdrs);
  }
}

int gw_web_index(struct gw_req *req) {
  return web_serve(req, "index.html");
}

int gw_web_file(struct gw_req *req) {
  return web_serve(req, req->name);
}
