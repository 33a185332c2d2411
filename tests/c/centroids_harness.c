/* Reads grids from stdin and prints the regions edge_centroids_decode finds, one per line.
 * Input, repeated: "H W K THRESHOLD MAX\n" then H*W*K signed bytes as decimal numbers. */
#include <stdio.h>
#include <stdlib.h>

#include "edge_centroids.h"

int main(void) {
    unsigned h, w, k, max;
    int threshold;
    while (scanf("%u %u %u %d %u", &h, &w, &k, &threshold, &max) == 5) {
        size_t cells = (size_t)h * w;
        int8_t *grid = malloc(cells * k + 1);
        uint8_t *marks = malloc(cells + 1);
        uint16_t *stack = malloc((cells + 1) * sizeof *stack);
        edge_centroid_t *found = malloc((max + 1) * sizeof *found);
        if (!grid || !marks || !stack || !found) return 1;
        for (size_t i = 0; i < cells * k; ++i) {
            int v;
            if (scanf("%d", &v) != 1) return 2;
            grid[i] = (int8_t)v;
        }
        size_t n = edge_centroids_decode(grid, (uint16_t)h, (uint16_t)w, (uint16_t)k,
                                         (int8_t)threshold, marks, stack, found, max);
        printf("%zu\n", n);
        for (size_t i = 0; i < n; ++i) {
            const edge_centroid_t *r = &found[i];
            printf("%u %d %u %u %u %u %u %u\n", r->channel, r->value, r->x0, r->y0, r->x1, r->y1,
                   r->first, r->cells);
        }
        free(grid);
        free(marks);
        free(stack);
        free(found);
    }
    return 0;
}
