/* annotate: gathers facts about a service over HTTP and adds them to the incident
 * timeline as a note.
 *
 * Params: endpoint (base URL, must be in allowed_hosts), service.
 * Effect: GET {endpoint}/v1/services/{service}/facts; the note quotes the body
 *         and the time the facts were gathered (from the host clock).
 * Read-only, so a dry run does the same thing.
 * Uses kv to count how many notes it added for this plugin (visible in details).
 */
#include "signalcraft.h"

static sc_u64 handle(sc_str input) {
    sc_str endpoint, service;
    if (!sc_json_find(input, "params.endpoint", &endpoint) ||
        !sc_json_find(input, "params.service", &service)) {
        sc_json out = sc_output_begin("failure", "missing params.endpoint or params.service");
        return sc_output_end(&out);
    }
    sc_str url = sc_concat(endpoint, sc_cstr("/v1/services/"), service, sc_cstr("/facts"));
    sc_str empty = {0, 0};
    sc_http_response r = sc_http("GET", url, empty);
    if (!r.ok || r.status != 200) {
        sc_json out = sc_output_begin("failure", "could not gather facts");
        sc_json_key(&out, "details");
        sc_json_begin_object(&out);
        sc_json_key(&out, "http_status");
        sc_json_int(&out, r.ok ? r.status : r.error);
        sc_json_end_object(&out);
        return sc_output_end(&out);
    }

    /* Count notes across runs in the plugin's kv store. */
    sc_i64 count = 0;
    sc_i64 got = sc_host_kv_get("notes", 5);
    if (got >= 0) sc_str_to_int(sc_unpack(got), &count);
    count++;
    sc_json c = sc_json_new(24);
    sc_json_int(&c, count);
    sc_host_kv_set("notes", 5, c.ptr, c.len);

    /* The body is still JSON-escaped text; writing it raw inside quotes keeps it valid. */
    sc_json text = sc_json_new(64 + r.body.len);
    sc_json_raw(&text, "facts for ", 10);
    sc_json_raw(&text, service.ptr, service.len);
    sc_json_raw(&text, ": ", 2);
    sc_json_raw(&text, r.body.ptr, r.body.len);

    sc_json out = sc_output_begin("success", "added a note with service facts");
    sc_json_key(&out, "details");
    sc_json_begin_object(&out);
    sc_json_key(&out, "gathered_at_ms");
    sc_json_int(&out, sc_now_ms());
    sc_json_key(&out, "notes_added");
    sc_json_int(&out, count);
    sc_json_end_object(&out);
    sc_json_key(&out, "follow_up");
    sc_json_begin_object(&out);
    sc_json_key(&out, "type");
    sc_json_cstring(&out, "note");
    sc_json_key(&out, "text");
    sc__json_pre_value(&out);
    sc_json_raw(&out, "\"", 1);
    sc_json_raw(&out, text.ptr, text.len);
    sc_json_raw(&out, "\"", 1);
    out.need_comma = 1;
    sc_json_end_object(&out);
    return sc_output_end(&out);
}

SIGNALCRAFT_REMEDIATION(handle)
