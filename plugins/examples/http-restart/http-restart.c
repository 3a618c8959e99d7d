/* http-restart: asks a deploy API to restart a service.
 *
 * Params: endpoint (base URL of the deploy API, must be in allowed_hosts),
 *         service (service name).
 * Effect: POST {endpoint}/v1/services/{service}/restart with
 *         {"incident_id": ..., "reason": "signalcraft remediation"}.
 * Dry run: reports the request it would send and sends nothing.
 * On 2xx: success, follow-up "mitigate". Otherwise: failure with the status.
 */
#include "signalcraft.h"

static sc_u64 handle(sc_str input) {
    sc_str endpoint, service, incident, dry;
    if (!sc_json_find(input, "params.endpoint", &endpoint) ||
        !sc_json_find(input, "params.service", &service) ||
        !sc_json_find(input, "incident_id", &incident)) {
        sc_json out = sc_output_begin("failure", "missing params.endpoint, params.service or incident_id");
        return sc_output_end(&out);
    }
    sc_str url = sc_concat(endpoint, sc_cstr("/v1/services/"), service, sc_cstr("/restart"));
    int dry_run = sc_json_find(input, "dry_run", &dry) && sc_str_eq(dry, "true");
    if (dry_run) {
        sc_json out = sc_output_begin("noop", "dry run: would POST the restart request");
        sc_json_key(&out, "details");
        sc_json_begin_object(&out);
        sc_json_key(&out, "method");
        sc_json_cstring(&out, "POST");
        sc_json_key(&out, "url");
        sc_json_string(&out, url);
        sc_json_end_object(&out);
        return sc_output_end(&out);
    }

    sc_json body = sc_json_new(128);
    sc_json_begin_object(&body);
    sc_json_key(&body, "incident_id");
    sc_json_string(&body, incident);
    sc_json_key(&body, "reason");
    sc_json_cstring(&body, "signalcraft remediation");
    sc_json_end_object(&body);
    sc_str body_str = {body.ptr, body.len};

    sc_log(SC_INFO, "requesting restart");
    sc_http_response r = sc_http("POST", url, body_str);
    if (!r.ok) {
        sc_json out = sc_output_begin("failure", "deploy API unreachable or not allowed");
        sc_json_key(&out, "details");
        sc_json_begin_object(&out);
        sc_json_key(&out, "host_error");
        sc_json_int(&out, r.error);
        sc_json_end_object(&out);
        return sc_output_end(&out);
    }
    int ok = r.status >= 200 && r.status < 300;
    sc_json out = sc_output_begin(ok ? "success" : "failure",
                                  ok ? "restart requested" : "deploy API refused the restart");
    sc_json_key(&out, "details");
    sc_json_begin_object(&out);
    sc_json_key(&out, "http_status");
    sc_json_int(&out, r.status);
    sc_json_key(&out, "url");
    sc_json_string(&out, url);
    sc_json_end_object(&out);
    if (ok) sc_output_follow_up(&out, "mitigate");
    return sc_output_end(&out);
}

SIGNALCRAFT_REMEDIATION(handle)
