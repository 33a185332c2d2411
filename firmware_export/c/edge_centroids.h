/*
 * edge_centroids.h - the centroid decoder of edge's per-cell detectors (FOMO-style), in C99.
 *
 * The twin of edge/decode/centroids.py: on the same int8 output both give the same regions in
 * the same order (shared test vectors, tests/test_centroids.py). Header-only, no malloc, no
 * floating point: the caller passes the threshold already quantized (the exporter computes it
 * with edge.decode.centroids.quantize_threshold) and two work buffers of H*W entries.
 *
 * The rule: a cell belongs to class c >= 1 when c is its largest channel (ties go to the lower
 * channel) and its value is >= threshold_q; touching cells of one class (8-connectivity) form a
 * region; a region gives its class, its largest value and the bounding box of its cells
 * [x0, y0, x1, y1) in cell units. Regions are kept best first (equal values: the raster order
 * of their first cell), at most max_regions of them.
 *
 *     uint8_t marks[H * W];
 *     uint16_t stack[H * W];
 *     edge_centroid_t found[8];
 *     size_t n = edge_centroids_decode(output, H, W, K, threshold_q, marks, stack, found, 8);
 */
#ifndef EDGE_CENTROIDS_H
#define EDGE_CENTROIDS_H

#include <stddef.h>
#include <stdint.h>

/* The largest grid the work buffers' uint16_t indices can address. */
#define EDGE_CENTROIDS_MAX_CELLS 65535u

typedef struct {
    uint8_t channel;  /* class channel, >= 1 (0 is the background) */
    int8_t value;     /* the region's largest cell value (quantized) */
    uint16_t x0, y0;  /* first cell column and row */
    uint16_t x1, y1;  /* one past the last cell column and row */
    uint16_t cells;   /* cells in the region */
    uint16_t first;   /* raster index of the region's first cell, y * W + x */
} edge_centroid_t;

/* The winning channel of one cell: the first largest value. */
static inline uint8_t edge_centroids_winner_(const int8_t *cell, uint16_t channels) {
    uint8_t best = 0;
    for (uint16_t c = 1; c < channels; ++c) {
        if (cell[c] > cell[best]) best = (uint8_t)c;
    }
    return best;
}

/* Keep `r` among the best `max_regions` (sorted by value, descending; stable). */
static inline size_t edge_centroids_keep_(edge_centroid_t *kept, size_t count, size_t max_regions,
                                          const edge_centroid_t *r) {
    size_t at = count;
    while (at > 0 && kept[at - 1].value < r->value) --at;
    if (at >= max_regions) return count;
    size_t last = count < max_regions ? count : max_regions - 1;
    for (size_t i = last; i > at; --i) kept[i] = kept[i - 1];
    kept[at] = *r;
    return count < max_regions ? count + 1 : count;
}

/*
 * Decode `output` ([height, width, channels] int8, row-major) into at most `max_regions`
 * regions, best first. `marks` and `stack` hold height * width entries each. Returns the number
 * of regions written, or 0 when the grid is empty, too large or has fewer than two channels.
 */
static inline size_t edge_centroids_decode(const int8_t *output, uint16_t height, uint16_t width,
                                           uint16_t channels, int8_t threshold_q, uint8_t *marks,
                                           uint16_t *stack, edge_centroid_t *found,
                                           size_t max_regions) {
    uint32_t total = (uint32_t)height * width;
    if (total == 0 || total > EDGE_CENTROIDS_MAX_CELLS || channels < 2 || channels > 255 ||
        max_regions == 0)
        return 0;
    /* marks: 0 = background or under the threshold, else the cell's class; 255 = visited. */
    for (uint32_t i = 0; i < total; ++i) {
        const int8_t *cell = output + (size_t)i * channels;
        uint8_t c = edge_centroids_winner_(cell, channels);
        marks[i] = (c != 0 && cell[c] >= threshold_q) ? c : 0;
    }
    size_t count = 0;
    for (uint32_t start = 0; start < total; ++start) {
        uint8_t channel = marks[start];
        if (channel == 0 || channel == 255) continue;
        edge_centroid_t r = {channel, -128, (uint16_t)(start % width), (uint16_t)(start / width),
                             (uint16_t)(start % width + 1), (uint16_t)(start / width + 1), 0,
                             (uint16_t)start};
        uint32_t top = 0;
        stack[top++] = (uint16_t)start;
        marks[start] = 255;
        while (top > 0) {
            uint16_t at = stack[--top];
            uint16_t x = (uint16_t)(at % width), y = (uint16_t)(at / width);
            int8_t v = output[(size_t)at * channels + channel];
            if (v > r.value) r.value = v;
            if (x < r.x0) r.x0 = x;
            if (y < r.y0) r.y0 = y;
            if (x + 1 > r.x1) r.x1 = (uint16_t)(x + 1);
            if (y + 1 > r.y1) r.y1 = (uint16_t)(y + 1);
            r.cells++;
            for (int dy = -1; dy <= 1; ++dy) {
                for (int dx = -1; dx <= 1; ++dx) {
                    int nx = x + dx, ny = y + dy;
                    if ((dx == 0 && dy == 0) || nx < 0 || ny < 0 || nx >= width || ny >= height)
                        continue;
                    uint16_t n = (uint16_t)(ny * width + nx);
                    if (marks[n] != channel) continue;
                    marks[n] = 255;
                    stack[top++] = n;
                }
            }
        }
        count = edge_centroids_keep_(found, count, max_regions, &r);
    }
    return count;
}

#endif /* EDGE_CENTROIDS_H */
