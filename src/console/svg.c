/* Charts and the QR code as inline SVG made here: no script, no image from elsewhere. */
#include <stdio.h>
#include <string.h>

#include <qrencode.h>

#include "console/internal.h"

#define BAR_W 40
#define CHART_H 120

int console_svg_bars(struct tw_buf *b, const char *title, const int64_t *counts, size_t n,
                     const char *unit, struct tw_err *err)
{
    int64_t max = 1;
    for (size_t i = 0; i < n; i++)
        if (counts[i] > max)
            max = counts[i];
    int w = (int)n * BAR_W + 20;
    TW_GUARD(tw_buf_appendf(b, err,
                            "<figure><svg class=\"chart\" role=\"img\" width=\"%d\" height=\"%d\" "
                            "viewBox=\"0 0 %d %d\" xmlns=\"http://www.w3.org/2000/svg\"><title>",
                            w, CHART_H + 40, w, CHART_H + 40));
    TW_GUARD(console_html_esc(b, title, err));
    TW_GUARD(tw_buf_appendf(b, err, "</title>"));
    for (size_t i = 0; i < n; i++) {
        int h = (int)(counts[i] * CHART_H / max);
        int x = 10 + (int)i * BAR_W;
        TW_GUARD(tw_buf_appendf(b, err,
                                "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\">"
                                "<title>%s %zu: %lld</title></rect>"
                                "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%lld</text>"
                                "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
                                "class=\"axis\">%zu</text>",
                                x, CHART_H + 10 - h, BAR_W - 6, h, unit, i, (long long)counts[i],
                                x + (BAR_W - 6) / 2, CHART_H + 8 - h, (long long)counts[i],
                                x + (BAR_W - 6) / 2, CHART_H + 30, i));
    }
    TW_GUARD(tw_buf_appendf(b, err, "</svg><figcaption>"));
    TW_GUARD(console_html_esc(b, title, err));
    return tw_buf_appendf(b, err, "</figcaption></figure>\n");
}

int console_svg_qr(struct tw_buf *b, const char *text, struct tw_err *err)
{
    QRcode *qr = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
    TW_ENSURE(qr != NULL, err, TW_ERR_INTERNAL, "cannot make the QR code");
    int quiet = 4, size = qr->width + 2 * quiet, rc = 0;
    rc = tw_buf_appendf(b, err,
                        "<svg class=\"qr\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 "
                        "%d %d\" xmlns=\"http://www.w3.org/2000/svg\"><title>QR code of the "
                        "enrollment command</title><rect width=\"%d\" height=\"%d\" "
                        "fill=\"#fff\"/><path fill=\"#000\" d=\"",
                        size * 4, size * 4, size, size, size, size);
    for (int y = 0; rc == 0 && y < qr->width; y++)
        for (int x = 0; rc == 0 && x < qr->width; x++)
            if (qr->data[y * qr->width + x] & 1)
                rc = tw_buf_appendf(b, err, "M%d %dh1v1h-1z", x + quiet, y + quiet);
    if (rc == 0)
        rc = tw_buf_appendf(b, err, "\"/></svg>\n");
    QRcode_free(qr);
    return rc;
}
