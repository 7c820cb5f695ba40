/* The nghttp2 session set-up both sides share (see h2.h): the client-facing server session
 * (h2_session.c) and the backend client session (h2_upstream.c) get the same options:
 *   - no automatic WINDOW_UPDATE: a side's window opens only as its bytes left on the other
 *     side, so neither makes the gateway buffer without bound;
 *   - the flood limits (CONTINUATION frames per header block, CVE-2024-28182; entries per
 *     SETTINGS frame; queued SETTINGS/PING acknowledgements), which guard against a hostile
 *     backend as much as against a client;
 *   - no RFC 7540 priority tree (RFC 9218 §2.1, announced with SETTINGS_NO_RFC7540_PRIORITIES):
 *     nghttp2 then keeps no closed streams for it, so a connection between requests holds no
 *     stream state, and spends nothing on reprioritising;
 *   - the server alone: the rapid-reset bucket (CVE-2023-44487). */
#include "gateway/h2.h"

#define MAX_CONTINUATIONS 8
#define MAX_SETTINGS 32
#define MAX_OUTBOUND_ACK 1000

int gw_h2_session_new(nghttp2_session **out, const struct gw_h2_setup *setup, void *ud,
                      struct tw_err *err)
{
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int rc = -1;
    *out = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
        tw_err_set(err, TW_ERR_INTERNAL, "http/2 session: out of memory");
        goto out;
    }
    if (setup->begin_headers != NULL)
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, setup->begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, setup->header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, setup->frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, setup->data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, setup->stream_close);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
    nghttp2_option_set_max_settings(opt, MAX_SETTINGS);
    nghttp2_option_set_max_outbound_ack(opt, MAX_OUTBOUND_ACK);
    nghttp2_option_set_no_closed_streams(opt, 1);
    if (setup->server)
        nghttp2_option_set_stream_reset_rate_limit(opt, setup->max_resets, setup->max_resets);
    if ((setup->server ? nghttp2_session_server_new2(out, cbs, ud, opt)
                       : nghttp2_session_client_new2(out, cbs, ud, opt)) != 0) {
        *out = NULL;
        tw_err_set(err, TW_ERR_INTERNAL, "http/2 session: out of memory");
        goto out;
    }
    nghttp2_settings_entry iv[GW_H2_MAX_SETTINGS + 1];
    size_t n = setup->n_settings < GW_H2_MAX_SETTINGS ? setup->n_settings : GW_H2_MAX_SETTINGS;
    for (size_t i = 0; i < n; i++)
        iv[i] = setup->settings[i];
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
    if (nghttp2_submit_settings(*out, NGHTTP2_FLAG_NONE, iv, n) != 0) {
        nghttp2_session_del(*out);
        *out = NULL;
        tw_err_set(err, TW_ERR_INTERNAL, "http/2 settings failed");
        goto out;
    }
    rc = 0;
out:
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    return rc;
}
