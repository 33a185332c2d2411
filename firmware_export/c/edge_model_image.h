/*
 * edge_model_image.h - boot-time check of the model image in a board's model slot.
 *
 * edge-flash writes a model image into the flash slot that the firmware from edge-export reserves
 * (the board profile's [mcu.model_slot]). Before the firmware hands the model to TensorFlow Lite
 * Micro it calls edge_model_image_check(). On any mismatch the firmware keeps running, reports
 * edge_model_image_reason(status) over serial in the label protocol's text mode, and does not
 * touch the model.
 *
 * Image layout (little-endian; firmware_export/image.py writes the same):
 *   0  magic "EDGM"            4  format version (u16, 1)   6  header size (u16, 64)
 *   8  payload length (u32)   12  model length (u32)       16  CRC-32 of the payload (u32)
 *  20  arena size needed     24  label count              28  board id: CRC-32 of the board name
 *  32  reserved (28 bytes)   60  CRC-32 of header bytes 0..59
 *  64  model (.tflite, "TFL3" at bytes 4..8), then labels as newline-terminated UTF-8 lines
 *
 * C99 and C++ compatible, header-only, no malloc, no stdio. CRC-32 comes from edge_crc32.h (the
 * one CRC the firmware has, shared with the label protocol).
 *
 * Usage:
 *   edge_model_image img;
 *   edge_image_status s = edge_model_image_check(slot, SLOT_LENGTH, EDGE_BOARD_ID,
 *                                                kTensorArenaSize, &img);
 *   if (s != EDGE_IMAGE_OK) { report(edge_model_image_reason(s)); }
 *   else { model = tflite::GetModel(img.model); ... }
 */
#ifndef EDGE_MODEL_IMAGE_H
#define EDGE_MODEL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "edge_crc32.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EDGE_MODEL_IMAGE_VERSION 1u
#define EDGE_MODEL_IMAGE_HEADER_SIZE 64u

typedef enum {
    EDGE_IMAGE_OK = 0,
    EDGE_IMAGE_TRUNCATED = 1,      /* fewer bytes than the header or its payload length */
    EDGE_IMAGE_BAD_MAGIC = 2,      /* no image in the slot (erased flash or other data) */
    EDGE_IMAGE_BAD_VERSION = 3,    /* written by an edge-flash this firmware does not know */
    EDGE_IMAGE_BAD_HEADER = 4,     /* header size field or header CRC-32 wrong */
    EDGE_IMAGE_WRONG_BOARD = 5,    /* image made for another board */
    EDGE_IMAGE_BAD_LENGTH = 6,     /* model length exceeds the payload length */
    EDGE_IMAGE_BAD_CRC = 7,        /* payload CRC-32 mismatch */
    EDGE_IMAGE_NOT_TFLITE = 8,     /* no "TFL3" file identifier at model bytes 4..8 */
    EDGE_IMAGE_ARENA_TOO_SMALL = 9 /* the firmware's arena is smaller than the model needs */
} edge_image_status;

typedef struct {
    const uint8_t *model;     /* the .tflite flatbuffer, 16-byte aligned if the slot is */
    uint32_t model_length;
    const uint8_t *labels;    /* label_count newline-terminated UTF-8 lines */
    uint32_t labels_length;
    uint32_t label_count;
    uint32_t arena_size;      /* bytes of tensor arena the model needs */
    uint32_t board_id;
} edge_model_image;

static inline uint32_t edge_model_image_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint32_t edge_model_image_u16(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

/* A short, fixed reason for a status, for the serial text-mode report. */
static inline const char *edge_model_image_reason(edge_image_status status) {
    switch (status) {
    case EDGE_IMAGE_OK: return "model image ok";
    case EDGE_IMAGE_TRUNCATED: return "model image truncated";
    case EDGE_IMAGE_BAD_MAGIC: return "no model image in slot (bad magic)";
    case EDGE_IMAGE_BAD_VERSION: return "model image format version not supported";
    case EDGE_IMAGE_BAD_HEADER: return "model image header corrupt (size or CRC)";
    case EDGE_IMAGE_WRONG_BOARD: return "model image is for another board";
    case EDGE_IMAGE_BAD_LENGTH: return "model image lengths inconsistent";
    case EDGE_IMAGE_BAD_CRC: return "model image payload CRC mismatch";
    case EDGE_IMAGE_NOT_TFLITE: return "model image payload is not a .tflite model";
    case EDGE_IMAGE_ARENA_TOO_SMALL: return "tensor arena too small for model image";
    }
    return "model image status unknown";
}

/*
 * Check the image at `image` (`available` bytes readable, e.g. the slot length) for this
 * firmware: board `board_id` (EDGE_BOARD_ID from edge-export) with an arena of `arena_size`
 * bytes. Fills *out only on EDGE_IMAGE_OK; out may be NULL.
 */
static inline edge_image_status edge_model_image_check(const uint8_t *image, uint32_t available,
                                                       uint32_t board_id, uint32_t arena_size,
                                                       edge_model_image *out) {
    uint32_t payload_length, model_length, needed_arena;
    const uint8_t *payload;
    if (image == NULL || available < EDGE_MODEL_IMAGE_HEADER_SIZE) {
        return EDGE_IMAGE_TRUNCATED;
    }
    if (image[0] != 'E' || image[1] != 'D' || image[2] != 'G' || image[3] != 'M') {
        return EDGE_IMAGE_BAD_MAGIC;
    }
    if (edge_model_image_u16(image + 4) != EDGE_MODEL_IMAGE_VERSION) {
        return EDGE_IMAGE_BAD_VERSION;
    }
    if (edge_model_image_u16(image + 6) != EDGE_MODEL_IMAGE_HEADER_SIZE ||
        edge_crc32(image, 60u) != edge_model_image_u32(image + 60)) {
        return EDGE_IMAGE_BAD_HEADER;
    }
    if (edge_model_image_u32(image + 28) != board_id) {
        return EDGE_IMAGE_WRONG_BOARD;
    }
    payload_length = edge_model_image_u32(image + 8);
    model_length = edge_model_image_u32(image + 12);
    if (payload_length > available - EDGE_MODEL_IMAGE_HEADER_SIZE) {
        return EDGE_IMAGE_TRUNCATED;
    }
    if (model_length > payload_length) {
        return EDGE_IMAGE_BAD_LENGTH;
    }
    payload = image + EDGE_MODEL_IMAGE_HEADER_SIZE;
    if (edge_crc32(payload, payload_length) != edge_model_image_u32(image + 16)) {
        return EDGE_IMAGE_BAD_CRC;
    }
    if (model_length < 8u || payload[4] != 'T' || payload[5] != 'F' || payload[6] != 'L' ||
        payload[7] != '3') {
        return EDGE_IMAGE_NOT_TFLITE;
    }
    needed_arena = edge_model_image_u32(image + 20);
    if (needed_arena > arena_size) {
        return EDGE_IMAGE_ARENA_TOO_SMALL;
    }
    if (out != NULL) {
        out->model = payload;
        out->model_length = model_length;
        out->labels = payload + model_length;
        out->labels_length = payload_length - model_length;
        out->label_count = edge_model_image_u32(image + 24);
        out->arena_size = needed_arena;
        out->board_id = board_id;
    }
    return EDGE_IMAGE_OK;
}

#ifdef __cplusplus
}
#endif

#endif /* EDGE_MODEL_IMAGE_H */
