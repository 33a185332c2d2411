/*
 * edge_labels.h - encoder for the edge serial label protocol, version 1 (with the frame,
 * device, run and detections fields).
 *
 * Header-only C99 for microcontroller firmware: no malloc, no stdio, no floating point except
 * in edge_labels_quantize_score(). Every function writes into a buffer owned by the caller and
 * returns the number of bytes written, or 0 if the buffer is too small or the record invalid.
 * The byte layouts are documented in docs/protocol.md; the Python side is edge.serial.protocol,
 * and a host test checks that both produce identical bytes.
 *
 * Binary mode (COBS frame, 0x00 delimited; send EDGE_LABELS_STREAM_START once at boot):
 *
 *     uint8_t frame[EDGE_LABELS_MAX_FRAME];
 *     size_t n = edge_labels_encode_binary(&record, frame, sizeof frame);
 *     uart_write(frame, n);
 *
 * Text mode (one JSON object per line, '\n' included, not NUL-terminated):
 *
 *     char line[128];
 *     size_t n = edge_labels_encode_text(&record, line, sizeof line);
 *
 * A detector's record (e.g. FOMO centroids as small boxes) carries its objects best first:
 *
 *     edge_labels_detection_t objects[2];
 *     objects[0].label = 1;
 *     objects[0].score_q16 = edge_labels_quantize_score(0.91f);
 *     objects[0].box_q16[0] = edge_labels_normalise(x0, frame_width);   (xmin, ymin, xmax, ymax)
 *     ...
 *     record.detections = objects;
 *     record.detection_count = 2;
 *     record.has_detections = 1;      (also with detection_count 0: "nothing found")
 */
#ifndef EDGE_LABELS_H
#define EDGE_LABELS_H

#include <stddef.h>
#include <stdint.h>

#define EDGE_LABELS_VERSION 1u
#define EDGE_LABELS_FLAG_LATENCY 0x01u
#define EDGE_LABELS_FLAG_FRAME 0x02u
#define EDGE_LABELS_FLAG_DEVICE 0x04u
#define EDGE_LABELS_FLAG_RUN 0x08u
#define EDGE_LABELS_FLAG_DETECTIONS 0x10u
#define EDGE_LABELS_MAX_DEVICE 32u
#define EDGE_LABELS_HEADER_SIZE 15u
#define EDGE_LABELS_MAX_PAYLOAD 254u
#define EDGE_LABELS_MAX_TOP_K 57u
#define EDGE_LABELS_MAX_DETECTIONS 19u
#define EDGE_LABELS_DETECTION_SIZE 12u
/* COBS code byte + payload + 0x00 delimiter. */
#define EDGE_LABELS_MAX_FRAME (EDGE_LABELS_MAX_PAYLOAD + 2u)
#define EDGE_LABELS_MAX_LINE 2048u
#define EDGE_LABELS_STREAM_START 0x00u

/* One further (label, score) pair of the top-k list. */
typedef struct {
    uint16_t label;
    uint16_t score_q16; /* edge_labels_quantize_score(score) */
} edge_labels_entry_t;

/* One object a detector found; box edges normalised to 0..65535 of the frame's size. */
typedef struct {
    uint16_t label;
    uint16_t score_q16;  /* edge_labels_quantize_score(score) */
    uint16_t box_q16[4]; /* xmin, ymin, xmax, ymax: edge_labels_normalise(pixels, size);
                            xmin <= xmax and ymin <= ymax */
} edge_labels_detection_t;

/* One result. Zero-initialise it, then fill in what you have. */
typedef struct {
    uint32_t seq;                     /* increments per record, wraps at 2^32 */
    uint32_t time_ms;                 /* device time in milliseconds */
    uint16_t label;                   /* label index */
    uint16_t score_q16;               /* edge_labels_quantize_score(score) */
    const char *text;                 /* NUL-terminated UTF-8 label text or NULL (text mode) */
    const edge_labels_entry_t *top_k; /* top_k_count entries; NULL if top_k_count == 0 */
    uint8_t top_k_count;              /* at most EDGE_LABELS_MAX_TOP_K */
    uint8_t has_latency;              /* nonzero if latency_us is set */
    uint32_t latency_us;              /* inference latency in microseconds */
    uint8_t has_frame;                /* nonzero if frame is set */
    uint32_t frame;                   /* frame counter; seq counts records sent, so frames
                                         skipped on purpose (send on change) are not lost */
    const char *device;               /* NUL-terminated UTF-8 name, 1..32 bytes, or NULL */
    uint8_t has_run;                  /* nonzero if run is set */
    uint32_t run;                     /* run id, new at every boot (e.g. from a boot counter
                                         or a hardware RNG): (device, run, seq) is unique */
    uint8_t has_detections;           /* nonzero for a detector's record */
    uint8_t detection_count;          /* at most EDGE_LABELS_MAX_DETECTIONS (and what fits) */
    const edge_labels_detection_t *detections; /* best first; NULL if detection_count == 0 */
} edge_labels_record_t;

/* Score in [0, 1] to uint16: score * 65535 rounded half up; NaN and below 0 give 0. */
static inline uint16_t edge_labels_quantize_score(float score)
{
    if (!(score > 0.0f)) {
        return 0u;
    }
    if (score >= 1.0f) {
        return 65535u;
    }
    return (uint16_t)(score * 65535.0f + 0.5f);
}

/* A pixel coordinate as a fraction of size in 0..65535, rounded half up; 65535 beyond size. */
static inline uint16_t edge_labels_normalise(uint32_t pixels, uint32_t size)
{
    if (size == 0u || pixels >= size) {
        return 65535u;
    }
    return (uint16_t)(((uint64_t)pixels * 65535u + size / 2u) / size);
}

/* CRC-32 as zlib.crc32: reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF. */
static inline uint32_t edge_labels_crc32(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        for (bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return crc ^ 0xFFFFFFFFu;
}

static inline void edge_labels_put_u16_(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static inline void edge_labels_put_u32_(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

/*
 * COBS-encode in place: the payload of len <= 254 bytes sits at buf[1..len]; buf[0] is free.
 * Each 0x00 becomes a code byte (distance to the next 0x00 or the end). Returns len + 1.
 */
static inline size_t edge_labels_cobs_in_place(uint8_t *buf, size_t len)
{
    size_t code_at = 0;
    size_t i;
    for (i = 1; i <= len; i++) {
        if (buf[i] == 0u) {
            buf[code_at] = (uint8_t)(i - code_at);
            code_at = i;
        }
    }
    buf[code_at] = (uint8_t)(len + 1u - code_at);
    return len + 1u;
}

/* Length of the device name (0 if NULL), or EDGE_LABELS_MAX_DEVICE + 1 if too long. */
static inline size_t edge_labels_device_len_(const char *device)
{
    size_t n = 0;
    while (device != NULL && device[n] != '\0' && n <= EDGE_LABELS_MAX_DEVICE) {
        n++;
    }
    return n;
}

/* Nonzero if r's lists and device name are valid (sizes aside). */
static inline int edge_labels_valid_(const edge_labels_record_t *r)
{
    size_t device = edge_labels_device_len_(r->device);
    unsigned i;
    if (r->top_k_count > EDGE_LABELS_MAX_TOP_K || (r->top_k_count > 0u && r->top_k == NULL)
        || (r->device != NULL && (device == 0u || device > EDGE_LABELS_MAX_DEVICE))) {
        return 0;
    }
    if (r->has_detections) {
        if (r->detection_count > EDGE_LABELS_MAX_DETECTIONS
            || (r->detection_count > 0u && r->detections == NULL)) {
            return 0;
        }
        for (i = 0; i < r->detection_count; i++) {
            const uint16_t *b = r->detections[i].box_q16;
            if (b[0] > b[2] || b[1] > b[3]) {
                return 0;
            }
        }
    }
    return 1;
}

/* Size of the binary payload of r (CRC included), or 0 if r is invalid or too big. */
static inline size_t edge_labels_payload_size(const edge_labels_record_t *r)
{
    size_t device = edge_labels_device_len_(r->device);
    size_t size;
    if (!edge_labels_valid_(r)) {
        return 0u;
    }
    size = EDGE_LABELS_HEADER_SIZE + (r->has_latency ? 4u : 0u) + (r->has_frame ? 4u : 0u)
           + (r->device != NULL ? 1u + device : 0u) + (r->has_run ? 4u : 0u)
           + 4u * (size_t)r->top_k_count
           + (r->has_detections
                  ? 1u + EDGE_LABELS_DETECTION_SIZE * (size_t)r->detection_count : 0u)
           + 4u;
    return size <= EDGE_LABELS_MAX_PAYLOAD ? size : 0u;
}

/* One binary frame of r (delimiter included) into buf; returns its length or 0. */
static inline size_t edge_labels_encode_binary(const edge_labels_record_t *r, uint8_t *buf,
                                               size_t cap)
{
    size_t size = edge_labels_payload_size(r);
    uint8_t *p = buf + 1;
    size_t at;
    unsigned i;
    if (size == 0u || cap < size + 2u) {
        return 0u;
    }
    p[0] = (uint8_t)EDGE_LABELS_VERSION;
    p[1] = (uint8_t)((r->has_latency ? EDGE_LABELS_FLAG_LATENCY : 0u)
                     | (r->has_frame ? EDGE_LABELS_FLAG_FRAME : 0u)
                     | (r->device != NULL ? EDGE_LABELS_FLAG_DEVICE : 0u)
                     | (r->has_run ? EDGE_LABELS_FLAG_RUN : 0u)
                     | (r->has_detections ? EDGE_LABELS_FLAG_DETECTIONS : 0u));
    edge_labels_put_u32_(p + 2, r->seq);
    edge_labels_put_u32_(p + 6, r->time_ms);
    edge_labels_put_u16_(p + 10, r->label);
    edge_labels_put_u16_(p + 12, r->score_q16);
    p[14] = r->top_k_count;
    at = EDGE_LABELS_HEADER_SIZE;
    if (r->has_latency) {
        edge_labels_put_u32_(p + at, r->latency_us);
        at += 4u;
    }
    if (r->has_frame) {
        edge_labels_put_u32_(p + at, r->frame);
        at += 4u;
    }
    if (r->device != NULL) {
        size_t n = edge_labels_device_len_(r->device);
        p[at++] = (uint8_t)n;
        for (i = 0; i < n; i++) {
            p[at++] = (uint8_t)r->device[i];
        }
    }
    if (r->has_run) {
        edge_labels_put_u32_(p + at, r->run);
        at += 4u;
    }
    for (i = 0; i < r->top_k_count; i++) {
        edge_labels_put_u16_(p + at, r->top_k[i].label);
        edge_labels_put_u16_(p + at + 2u, r->top_k[i].score_q16);
        at += 4u;
    }
    if (r->has_detections) {
        p[at++] = r->detection_count;
        for (i = 0; i < r->detection_count; i++) {
            const edge_labels_detection_t *d = &r->detections[i];
            edge_labels_put_u16_(p + at, d->label);
            edge_labels_put_u16_(p + at + 2u, d->score_q16);
            edge_labels_put_u16_(p + at + 4u, d->box_q16[0]);
            edge_labels_put_u16_(p + at + 6u, d->box_q16[1]);
            edge_labels_put_u16_(p + at + 8u, d->box_q16[2]);
            edge_labels_put_u16_(p + at + 10u, d->box_q16[3]);
            at += EDGE_LABELS_DETECTION_SIZE;
        }
    }
    edge_labels_put_u32_(p + at, edge_labels_crc32(p, at));
    at = edge_labels_cobs_in_place(buf, size);
    buf[at] = 0u;
    return at + 1u;
}

/* Text writer: appends while there is room and remembers overflow. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
} edge_labels_writer_t_;

static inline void edge_labels_put_char_(edge_labels_writer_t_ *w, char c)
{
    if (w->len < w->cap) {
        w->buf[w->len++] = c;
    } else {
        w->overflow = 1;
    }
}

static inline void edge_labels_put_(edge_labels_writer_t_ *w, const char *s)
{
    for (; *s != '\0'; s++) {
        edge_labels_put_char_(w, *s);
    }
}

/* Decimal of v, zero-padded to at least min_digits. */
static inline void edge_labels_put_uint_(edge_labels_writer_t_ *w, uint32_t v, int min_digits)
{
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u || n < min_digits);
    while (n > 0) {
        edge_labels_put_char_(w, digits[--n]);
    }
}

/* v / scale with `digits` decimals, e.g. 9876 / 10000 -> "0.9876". */
static inline void edge_labels_put_fixed_(edge_labels_writer_t_ *w, uint32_t v, uint32_t scale,
                                          int digits)
{
    edge_labels_put_uint_(w, v / scale, 1);
    edge_labels_put_(w, ".");
    edge_labels_put_uint_(w, v % scale, digits);
}

/* Score uint16 as four decimals, rounded half up in integers. */
static inline void edge_labels_put_score_(edge_labels_writer_t_ *w, uint16_t q)
{
    uint32_t ten_thousandths = ((uint32_t)q * 20000u + 65535u) / 131070u;
    edge_labels_put_fixed_(w, ten_thousandths, 10000u, 4);
}

/* v as exactly eight lowercase hex digits. */
static inline void edge_labels_put_hex32_(edge_labels_writer_t_ *w, uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    int shift;
    for (shift = 28; shift >= 0; shift -= 4) {
        edge_labels_put_char_(w, hex[(v >> (unsigned)shift) & 0x0Fu]);
    }
}

/* JSON string escaping only '"', '\\' and control characters (as \u00xx). */
static inline void edge_labels_put_string_(edge_labels_writer_t_ *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    edge_labels_put_char_(w, '"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            edge_labels_put_char_(w, '\\');
            edge_labels_put_char_(w, (char)c);
        } else if (c < 0x20u) {
            edge_labels_put_(w, "\\u00");
            edge_labels_put_char_(w, hex[c >> 4]);
            edge_labels_put_char_(w, hex[c & 0x0Fu]);
        } else {
            edge_labels_put_char_(w, (char)c);
        }
    }
    edge_labels_put_char_(w, '"');
}

/* One JSON line of r ('\n' included, no NUL) into buf; returns its length or 0. */
static inline size_t edge_labels_encode_text(const edge_labels_record_t *r, char *buf, size_t cap)
{
    edge_labels_writer_t_ w;
    unsigned i;
    int j;
    /* The text form carries what a binary frame can: the same records in both modes. */
    if (edge_labels_payload_size(r) == 0u) {
        return 0u;
    }
    w.buf = buf;
    w.cap = cap < EDGE_LABELS_MAX_LINE ? cap : EDGE_LABELS_MAX_LINE;
    w.len = 0u;
    w.overflow = 0;
    edge_labels_put_(&w, "{\"seq\":");
    edge_labels_put_uint_(&w, r->seq, 1);
    edge_labels_put_(&w, ",\"time_ms\":");
    edge_labels_put_uint_(&w, r->time_ms, 1);
    edge_labels_put_(&w, ",\"label\":");
    edge_labels_put_uint_(&w, r->label, 1);
    if (r->text != NULL) {
        edge_labels_put_(&w, ",\"text\":");
        edge_labels_put_string_(&w, r->text);
    }
    edge_labels_put_(&w, ",\"score\":");
    edge_labels_put_score_(&w, r->score_q16);
    if (r->top_k_count > 0u) {
        edge_labels_put_(&w, ",\"top_k\":[");
        for (i = 0; i < r->top_k_count; i++) {
            edge_labels_put_(&w, i == 0u ? "[" : ",[");
            edge_labels_put_uint_(&w, r->top_k[i].label, 1);
            edge_labels_put_(&w, ",");
            edge_labels_put_score_(&w, r->top_k[i].score_q16);
            edge_labels_put_(&w, "]");
        }
        edge_labels_put_(&w, "]");
    }
    if (r->has_latency) {
        edge_labels_put_(&w, ",\"latency_ms\":");
        edge_labels_put_fixed_(&w, r->latency_us, 1000u, 3);
    }
    if (r->has_frame) {
        edge_labels_put_(&w, ",\"frame\":");
        edge_labels_put_uint_(&w, r->frame, 1);
    }
    if (r->device != NULL) {
        edge_labels_put_(&w, ",\"device\":");
        edge_labels_put_string_(&w, r->device);
    }
    if (r->has_run) {
        edge_labels_put_(&w, ",\"run\":\"");
        edge_labels_put_hex32_(&w, r->run);
        edge_labels_put_(&w, "\"");
    }
    if (r->has_detections) {
        edge_labels_put_(&w, ",\"detections\":[");
        for (i = 0; i < r->detection_count; i++) {
            const edge_labels_detection_t *d = &r->detections[i];
            edge_labels_put_(&w, i == 0u ? "[" : ",[");
            edge_labels_put_uint_(&w, d->label, 1);
            edge_labels_put_(&w, ",");
            edge_labels_put_score_(&w, d->score_q16);
            for (j = 0; j < 4; j++) {
                edge_labels_put_(&w, ",");
                edge_labels_put_score_(&w, d->box_q16[j]);
            }
            edge_labels_put_(&w, "]");
        }
        edge_labels_put_(&w, "]");
    }
    edge_labels_put_(&w, "}\n");
    return w.overflow ? 0u : w.len;
}

#endif /* EDGE_LABELS_H */
