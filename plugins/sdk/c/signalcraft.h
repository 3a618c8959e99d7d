/*
 * signalcraft.h — header-only C SDK for SignalCraft remediation plugins, ABI v1.
 *
 * Freestanding: no libc needed. Build with Debian's clang-15 + lld-15:
 *
 *   clang-15 --target=wasm32 -O2 -nostdlib -ffreestanding -fvisibility=hidden \
 *     -Wl,--no-entry -Wl,--export-dynamic -Wl,-z,stack-size=65536 \
 *     -I plugins/sdk/c -o my-plugin.wasm my-plugin.c
 *
 * A plugin is one C file:
 *
 *   #include "signalcraft.h"
 *   static sc_u64 handle(sc_str input) {
 *       sc_json out = sc_output_begin("success", "did nothing");
 *       return sc_output_end(&out);
 *   }
 *   SIGNALCRAFT_REMEDIATION(handle)
 *
 * SIGNALCRAFT_REMEDIATION defines the exports the host needs: memory (by the
 * linker), alloc, dealloc, remediate and signalcraft_abi_version. The contract is
 * plugins/ABI.md.
 */
#ifndef SIGNALCRAFT_H
#define SIGNALCRAFT_H

typedef unsigned int sc_u32;
typedef unsigned long long sc_u64;
typedef long long sc_i64;

/* A byte slice (not NUL-terminated). */
typedef struct {
    const char *ptr;
    sc_u32 len;
} sc_str;

/* ------------------------------------------------------------------ host imports */

#define SC__IMPORT(name) __attribute__((import_module("signalcraft:host/v1"), import_name(name)))

/* Host-call error codes (negative results). */
#define SC_DENIED (-1)    /* capability not granted: the run will fail as Denied */
#define SC_INVALID (-2)   /* bad arguments */
#define SC_IO (-3)        /* network / storage error, HTTP timeout */
#define SC_NOT_FOUND (-4) /* kv_get: no such key */
#define SC_TOO_LARGE (-5)
#define SC_NO_MEMORY (-6)

/* Log levels for sc_log. */
#define SC_DEBUG 0
#define SC_INFO 1
#define SC_WARN 2
#define SC_ERROR 3

SC__IMPORT("log") void sc_host_log(int level, const char *ptr, sc_u32 len);
SC__IMPORT("now") sc_i64 sc_host_now(void);
SC__IMPORT("http_request") sc_i64 sc_host_http_request(const char *ptr, sc_u32 len);
SC__IMPORT("kv_get") sc_i64 sc_host_kv_get(const char *key, sc_u32 key_len);
SC__IMPORT("kv_set") int sc_host_kv_set(const char *key, sc_u32 key_len, const char *val, sc_u32 val_len);

/* ------------------------------------------------------------------ libc bits */
/* clang may emit calls to these even in freestanding code; weak so several
 * translation units can include the header. */

__attribute__((weak)) void *memcpy(void *dst, const void *src, unsigned long n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n--) *d++ = *s++;
    return dst;
}
__attribute__((weak)) void *memmove(void *dst, const void *src, unsigned long n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}
__attribute__((weak)) void *memset(void *dst, int c, unsigned long n) {
    unsigned char *d = (unsigned char *)dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
__attribute__((weak)) int memcmp(const void *a, const void *b, unsigned long n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}

static inline sc_u32 sc_strlen(const char *s) {
    sc_u32 n = 0;
    while (s[n]) n++;
    return n;
}

static inline sc_str sc_cstr(const char *s) {
    sc_str r = {s, sc_strlen(s)};
    return r;
}

static inline int sc_str_eq(sc_str a, const char *b) {
    sc_u32 n = sc_strlen(b);
    return a.len == n && memcmp(a.ptr, b, n) == 0;
}

/* ------------------------------------------------------------------ allocator */
/* A bump allocator over linear memory. The host makes a fresh instance for every
 * run, so nothing is ever freed; dealloc is a no-op. Returns 0 on failure. */

extern unsigned char __heap_base;
static sc_u32 sc__heap_top;

static inline void *sc_alloc(sc_u32 n) {
    if (!sc__heap_top) sc__heap_top = (sc_u32)&__heap_base;
    sc_u32 p = (sc__heap_top + 7u) & ~7u;
    sc_u32 end = p + n;
    if (end < p) return 0;
    sc_u32 have = (sc_u32)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        sc_u32 pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) return 0;
    }
    sc__heap_top = end;
    return (void *)p;
}

/* ------------------------------------------------------------------ logging, time */

static inline void sc_log(int level, const char *msg) { sc_host_log(level, msg, sc_strlen(msg)); }
static inline void sc_log_str(int level, sc_str msg) { sc_host_log(level, msg.ptr, msg.len); }

/* Unix milliseconds from the host's clock (the only clock a plugin has). */
static inline sc_i64 sc_now_ms(void) { return sc_host_now(); }

/* Splits a packed host result (ptr << 32 | len) into a slice. */
static inline sc_str sc_unpack(sc_i64 packed) {
    sc_str r = {(const char *)(sc_u32)((sc_u64)packed >> 32), (sc_u32)packed};
    return r;
}

/* ------------------------------------------------------------------ JSON writer */

typedef struct {
    char *ptr;
    sc_u32 len, cap;
    int need_comma; /* a value was written at this level */
    int after_key;  /* a key was just written: the next value needs no comma */
    int failed;     /* allocation failed; the result is unusable */
} sc_json;

static inline sc_json sc_json_new(sc_u32 cap) {
    sc_json j = {0};
    j.ptr = (char *)sc_alloc(cap);
    j.cap = j.ptr ? cap : 0;
    j.failed = j.ptr == 0;
    return j;
}

static inline void sc_json_raw(sc_json *j, const char *s, sc_u32 n) {
    if (j->failed) return;
    if (j->len + n > j->cap) {
        sc_u32 cap = j->cap * 2 + n;
        char *p = (char *)sc_alloc(cap);
        if (!p) {
            j->failed = 1;
            return;
        }
        memcpy(p, j->ptr, j->len);
        j->ptr = p;
        j->cap = cap;
    }
    memcpy(j->ptr + j->len, s, n);
    j->len += n;
}

static inline void sc__json_pre_value(sc_json *j) {
    if (j->need_comma && !j->after_key) sc_json_raw(j, ",", 1);
    j->after_key = 0;
}

/* Writes s as a quoted, escaped JSON string. */
static inline void sc__json_quoted(sc_json *j, const char *s, sc_u32 n) {
    static const char hex[] = "0123456789abcdef";
    sc_json_raw(j, "\"", 1);
    for (sc_u32 i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sc_json_raw(j, e, 2);
        } else if (c == '\n') {
            sc_json_raw(j, "\\n", 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sc_json_raw(j, e, 6);
        } else {
            sc_json_raw(j, (const char *)&s[i], 1);
        }
    }
    sc_json_raw(j, "\"", 1);
}

static inline void sc_json_key(sc_json *j, const char *key) {
    if (j->need_comma) sc_json_raw(j, ",", 1);
    sc__json_quoted(j, key, sc_strlen(key));
    sc_json_raw(j, ":", 1);
    j->after_key = 1;
}

static inline void sc_json_begin_object(sc_json *j) {
    sc__json_pre_value(j);
    sc_json_raw(j, "{", 1);
    j->need_comma = 0;
}
static inline void sc_json_end_object(sc_json *j) {
    sc_json_raw(j, "}", 1);
    j->need_comma = 1;
}
static inline void sc_json_begin_array(sc_json *j) {
    sc__json_pre_value(j);
    sc_json_raw(j, "[", 1);
    j->need_comma = 0;
}
static inline void sc_json_end_array(sc_json *j) {
    sc_json_raw(j, "]", 1);
    j->need_comma = 1;
}
static inline void sc_json_string(sc_json *j, sc_str s) {
    sc__json_pre_value(j);
    sc__json_quoted(j, s.ptr, s.len);
    j->need_comma = 1;
}
static inline void sc_json_cstring(sc_json *j, const char *s) { sc_json_string(j, sc_cstr(s)); }
static inline void sc_json_int(sc_json *j, sc_i64 v) {
    char buf[24];
    int n = 0, neg = v < 0;
    sc_u64 u = neg ? (sc_u64)(-(v + 1)) + 1 : (sc_u64)v;
    do {
        buf[23 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg) buf[23 - n++] = '-';
    sc__json_pre_value(j);
    sc_json_raw(j, buf + 24 - n, (sc_u32)n);
    j->need_comma = 1;
}
static inline void sc_json_bool(sc_json *j, int v) {
    sc__json_pre_value(j);
    sc_json_raw(j, v ? "true" : "false", v ? 4 : 5);
    j->need_comma = 1;
}
/* Writes an already-encoded JSON value (e.g. a slice of the input). */
static inline void sc_json_value(sc_json *j, sc_str raw_json) {
    sc__json_pre_value(j);
    sc_json_raw(j, raw_json.ptr, raw_json.len);
    j->need_comma = 1;
}

/* Packs the document for returning from remediate. */
static inline sc_u64 sc_json_result(sc_json *j) {
    if (j->failed) return 0;
    return ((sc_u64)(sc_u32)j->ptr << 32) | j->len;
}

/* ------------------------------------------------------------------ output helpers */
/* {"status": status, "message": message, ...details / follow_up added by the caller... } */

static inline sc_json sc_output_begin(const char *status, const char *message) {
    sc_json j = sc_json_new(512);
    sc_json_begin_object(&j);
    sc_json_key(&j, "status");
    sc_json_cstring(&j, status);
    sc_json_key(&j, "message");
    sc_json_cstring(&j, message);
    return j;
}

/* Adds "follow_up": {"type": type} ("resolve", "acknowledge", "mitigate"). */
static inline void sc_output_follow_up(sc_json *j, const char *type) {
    sc_json_key(j, "follow_up");
    sc_json_begin_object(j);
    sc_json_key(j, "type");
    sc_json_cstring(j, type);
    sc_json_end_object(j);
}

/* Adds "follow_up": {"type": "note", "text": text}. */
static inline void sc_output_note(sc_json *j, sc_str text) {
    sc_json_key(j, "follow_up");
    sc_json_begin_object(j);
    sc_json_key(j, "type");
    sc_json_cstring(j, "note");
    sc_json_key(j, "text");
    sc_json_string(j, text);
    sc_json_end_object(j);
}

static inline sc_u64 sc_output_end(sc_json *j) {
    sc_json_end_object(j);
    return sc_json_result(j);
}

/* ------------------------------------------------------------------ JSON reader */
/* Finds values in a JSON document by a dotted path of object keys
 * ("params.service"). Strings come back without quotes, escapes left as they
 * are; other values come back as their raw JSON text. */

static inline sc_u32 sc__ws(const char *s, sc_u32 n, sc_u32 i) {
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    return i;
}

/* Index just after the value starting at i, or n + 1 on malformed input. */
static inline sc_u32 sc__skip(const char *s, sc_u32 n, sc_u32 i) {
    if (i >= n) return n + 1;
    if (s[i] == '"') {
        for (i++; i < n; i++) {
            if (s[i] == '\\') i++;
            else if (s[i] == '"') return i + 1;
        }
        return n + 1;
    }
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < n; i++) {
            char c = s[i];
            if (c == '"') {
                i = sc__skip(s, n, i);
                if (i > n) return n + 1;
                i--;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return n + 1;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
           s[i] != '\r' && s[i] != '\t')
        i++;
    return i;
}

/* Returns 1 and sets *out when the path exists. */
static inline int sc_json_find(sc_str json, const char *path, sc_str *out) {
    const char *s = json.ptr;
    sc_u32 n = json.len, i = sc__ws(s, n, 0);
    while (*path) {
        const char *seg = path;
        sc_u32 seglen = 0;
        while (path[seglen] && path[seglen] != '.') seglen++;
        path += seglen + (path[seglen] == '.');
        if (i >= n || s[i] != '{') return 0;
        i = sc__ws(s, n, i + 1);
        int found = 0;
        while (i < n && s[i] == '"') {
            sc_u32 kend = sc__skip(s, n, i);
            if (kend > n) return 0;
            int match = kend - i - 2 == seglen && memcmp(s + i + 1, seg, seglen) == 0;
            i = sc__ws(s, n, kend);
            if (i >= n || s[i] != ':') return 0;
            i = sc__ws(s, n, i + 1);
            if (match) {
                found = 1;
                break;
            }
            i = sc__skip(s, n, i);
            if (i > n) return 0;
            i = sc__ws(s, n, i);
            if (i < n && s[i] == ',') i = sc__ws(s, n, i + 1);
        }
        if (!found) return 0;
    }
    sc_u32 end = sc__skip(s, n, i);
    if (end > n) return 0;
    if (s[i] == '"') {
        out->ptr = s + i + 1;
        out->len = end - i - 2;
    } else {
        out->ptr = s + i;
        out->len = end - i;
    }
    return 1;
}

/* Parses a JSON integer found with sc_json_find. Returns 1 on success. */
static inline int sc_str_to_int(sc_str v, sc_i64 *out) {
    sc_u32 i = 0;
    int neg = 0;
    sc_i64 r = 0;
    if (v.len && v.ptr[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i >= v.len) return 0;
    for (; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9') return 0;
        r = r * 10 + (v.ptr[i] - '0');
    }
    *out = neg ? -r : r;
    return 1;
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    int ok;         /* 1 when the host answered (any HTTP status) */
    sc_i64 error;   /* SC_DENIED, SC_IO, ... when !ok */
    sc_i64 status;  /* HTTP status */
    sc_str body;    /* response body (JSON string content, escapes left as they are) */
    sc_str raw;     /* the whole response document */
} sc_http_response;

/* Sends {"method":..,"url":..,"headers":{"content-type":"application/json"},"body":..}.
 * body may be {0, 0}. The host refuses URLs outside the manifest's allowed_hosts. */
static inline sc_http_response sc_http(const char *method, sc_str url, sc_str body) {
    sc_http_response r = {0};
    sc_json j = sc_json_new(256 + url.len + body.len * 2);
    sc_json_begin_object(&j);
    sc_json_key(&j, "method");
    sc_json_cstring(&j, method);
    sc_json_key(&j, "url");
    sc_json_string(&j, url);
    sc_json_key(&j, "headers");
    sc_json_begin_object(&j);
    sc_json_key(&j, "content-type");
    sc_json_cstring(&j, "application/json");
    sc_json_end_object(&j);
    sc_json_key(&j, "body");
    sc_json_string(&j, body);
    sc_json_end_object(&j);
    if (j.failed) {
        r.error = SC_NO_MEMORY;
        return r;
    }
    sc_i64 packed = sc_host_http_request(j.ptr, j.len);
    if (packed < 0) {
        r.error = packed;
        return r;
    }
    r.ok = 1;
    r.raw = sc_unpack(packed);
    sc_str v;
    if (sc_json_find(r.raw, "status", &v)) sc_str_to_int(v, &r.status);
    if (sc_json_find(r.raw, "body", &v)) r.body = v;
    return r;
}

/* Concatenates up to four slices into fresh memory (for building URLs). */
static inline sc_str sc_concat(sc_str a, sc_str b, sc_str c, sc_str d) {
    sc_str parts[4] = {a, b, c, d};
    sc_u32 n = a.len + b.len + c.len + d.len, at = 0;
    char *p = (char *)sc_alloc(n ? n : 1);
    sc_str r = {p, 0};
    if (!p) return r;
    for (int k = 0; k < 4; k++) {
        if (parts[k].len) memcpy(p + at, parts[k].ptr, parts[k].len);
        at += parts[k].len;
    }
    r.len = n;
    return r;
}

/* ------------------------------------------------------------------ exports */

#define SIGNALCRAFT_REMEDIATION(handler)                                                  \
    __attribute__((export_name("alloc"))) void *alloc(sc_u32 n) { return sc_alloc(n); }   \
    __attribute__((export_name("dealloc"))) void dealloc(void *p, sc_u32 n) {             \
        (void)p;                                                                          \
        (void)n;                                                                          \
    }                                                                                     \
    __attribute__((export_name("signalcraft_abi_version"))) int signalcraft_abi_version(  \
        void) {                                                                           \
        return 1;                                                                         \
    }                                                                                     \
    __attribute__((export_name("remediate"))) sc_u64 remediate(const char *in, sc_u32 len) { \
        sc_str input = {in, len};                                                         \
        return handler(input);                                                            \
    }

#endif /* SIGNALCRAFT_H */
