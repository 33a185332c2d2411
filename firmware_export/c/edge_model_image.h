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
 * C99 and C++ compatible, header-only, no malloc, no stdio. CRC-32 is the zlib/IEEE CRC with a
 * 1 KB const table (it stays in flash).
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

static const uint32_t edge_model_image_crc_table[256] = {
    0x00000000u, 0x77073096u, 0xEE0E612Cu, 0x990951BAu, 0x076DC419u, 0x706AF48Fu,
    0xE963A535u, 0x9E6495A3u, 0x0EDB8832u, 0x79DCB8A4u, 0xE0D5E91Eu, 0x97D2D988u,
    0x09B64C2Bu, 0x7EB17CBDu, 0xE7B82D07u, 0x90BF1D91u, 0x1DB71064u, 0x6AB020F2u,
    0xF3B97148u, 0x84BE41DEu, 0x1ADAD47Du, 0x6DDDE4EBu, 0xF4D4B551u, 0x83D385C7u,
    0x136C9856u, 0x646BA8C0u, 0xFD62F97Au, 0x8A65C9ECu, 0x14015C4Fu, 0x63066CD9u,
    0xFA0F3D63u, 0x8D080DF5u, 0x3B6E20C8u, 0x4C69105Eu, 0xD56041E4u, 0xA2677172u,
    0x3C03E4D1u, 0x4B04D447u, 0xD20D85FDu, 0xA50AB56Bu, 0x35B5A8FAu, 0x42B2986Cu,
    0xDBBBC9D6u, 0xACBCF940u, 0x32D86CE3u, 0x45DF5C75u, 0xDCD60DCFu, 0xABD13D59u,
    0x26D930ACu, 0x51DE003Au, 0xC8D75180u, 0xBFD06116u, 0x21B4F4B5u, 0x56B3C423u,
    0xCFBA9599u, 0xB8BDA50Fu, 0x2802B89Eu, 0x5F058808u, 0xC60CD9B2u, 0xB10BE924u,
    0x2F6F7C87u, 0x58684C11u, 0xC1611DABu, 0xB6662D3Du, 0x76DC4190u, 0x01DB7106u,
    0x98D220BCu, 0xEFD5102Au, 0x71B18589u, 0x06B6B51Fu, 0x9FBFE4A5u, 0xE8B8D433u,
    0x7807C9A2u, 0x0F00F934u, 0x9609A88Eu, 0xE10E9818u, 0x7F6A0DBBu, 0x086D3D2Du,
    0x91646C97u, 0xE6635C01u, 0x6B6B51F4u, 0x1C6C6162u, 0x856530D8u, 0xF262004Eu,
    0x6C0695EDu, 0x1B01A57Bu, 0x8208F4C1u, 0xF50FC457u, 0x65B0D9C6u, 0x12B7E950u,
    0x8BBEB8EAu, 0xFCB9887Cu, 0x62DD1DDFu, 0x15DA2D49u, 0x8CD37CF3u, 0xFBD44C65u,
    0x4DB26158u, 0x3AB551CEu, 0xA3BC0074u, 0xD4BB30E2u, 0x4ADFA541u, 0x3DD895D7u,
    0xA4D1C46Du, 0xD3D6F4FBu, 0x4369E96Au, 0x346ED9FCu, 0xAD678846u, 0xDA60B8D0u,
    0x44042D73u, 0x33031DE5u, 0xAA0A4C5Fu, 0xDD0D7CC9u, 0x5005713Cu, 0x270241AAu,
    0xBE0B1010u, 0xC90C2086u, 0x5768B525u, 0x206F85B3u, 0xB966D409u, 0xCE61E49Fu,
    0x5EDEF90Eu, 0x29D9C998u, 0xB0D09822u, 0xC7D7A8B4u, 0x59B33D17u, 0x2EB40D81u,
    0xB7BD5C3Bu, 0xC0BA6CADu, 0xEDB88320u, 0x9ABFB3B6u, 0x03B6E20Cu, 0x74B1D29Au,
    0xEAD54739u, 0x9DD277AFu, 0x04DB2615u, 0x73DC1683u, 0xE3630B12u, 0x94643B84u,
    0x0D6D6A3Eu, 0x7A6A5AA8u, 0xE40ECF0Bu, 0x9309FF9Du, 0x0A00AE27u, 0x7D079EB1u,
    0xF00F9344u, 0x8708A3D2u, 0x1E01F268u, 0x6906C2FEu, 0xF762575Du, 0x806567CBu,
    0x196C3671u, 0x6E6B06E7u, 0xFED41B76u, 0x89D32BE0u, 0x10DA7A5Au, 0x67DD4ACCu,
    0xF9B9DF6Fu, 0x8EBEEFF9u, 0x17B7BE43u, 0x60B08ED5u, 0xD6D6A3E8u, 0xA1D1937Eu,
    0x38D8C2C4u, 0x4FDFF252u, 0xD1BB67F1u, 0xA6BC5767u, 0x3FB506DDu, 0x48B2364Bu,
    0xD80D2BDAu, 0xAF0A1B4Cu, 0x36034AF6u, 0x41047A60u, 0xDF60EFC3u, 0xA867DF55u,
    0x316E8EEFu, 0x4669BE79u, 0xCB61B38Cu, 0xBC66831Au, 0x256FD2A0u, 0x5268E236u,
    0xCC0C7795u, 0xBB0B4703u, 0x220216B9u, 0x5505262Fu, 0xC5BA3BBEu, 0xB2BD0B28u,
    0x2BB45A92u, 0x5CB36A04u, 0xC2D7FFA7u, 0xB5D0CF31u, 0x2CD99E8Bu, 0x5BDEAE1Du,
    0x9B64C2B0u, 0xEC63F226u, 0x756AA39Cu, 0x026D930Au, 0x9C0906A9u, 0xEB0E363Fu,
    0x72076785u, 0x05005713u, 0x95BF4A82u, 0xE2B87A14u, 0x7BB12BAEu, 0x0CB61B38u,
    0x92D28E9Bu, 0xE5D5BE0Du, 0x7CDCEFB7u, 0x0BDBDF21u, 0x86D3D2D4u, 0xF1D4E242u,
    0x68DDB3F8u, 0x1FDA836Eu, 0x81BE16CDu, 0xF6B9265Bu, 0x6FB077E1u, 0x18B74777u,
    0x88085AE6u, 0xFF0F6A70u, 0x66063BCAu, 0x11010B5Cu, 0x8F659EFFu, 0xF862AE69u,
    0x616BFFD3u, 0x166CCF45u, 0xA00AE278u, 0xD70DD2EEu, 0x4E048354u, 0x3903B3C2u,
    0xA7672661u, 0xD06016F7u, 0x4969474Du, 0x3E6E77DBu, 0xAED16A4Au, 0xD9D65ADCu,
    0x40DF0B66u, 0x37D83BF0u, 0xA9BCAE53u, 0xDEBB9EC5u, 0x47B2CF7Fu, 0x30B5FFE9u,
    0xBDBDF21Cu, 0xCABAC28Au, 0x53B39330u, 0x24B4A3A6u, 0xBAD03605u, 0xCDD70693u,
    0x54DE5729u, 0x23D967BFu, 0xB3667A2Eu, 0xC4614AB8u, 0x5D681B02u, 0x2A6F2B94u,
    0xB40BBE37u, 0xC30C8EA1u, 0x5A05DF1Bu, 0x2D02EF8Du
};

/* zlib-compatible CRC-32 of len bytes. */
static inline uint32_t edge_model_image_crc32(const uint8_t *data, uint32_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    uint32_t i;
    for (i = 0; i < len; ++i) {
        crc = edge_model_image_crc_table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
    }
    return crc ^ 0xFFFFFFFFu;
}

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
        edge_model_image_crc32(image, 60u) != edge_model_image_u32(image + 60)) {
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
    if (edge_model_image_crc32(payload, payload_length) != edge_model_image_u32(image + 16)) {
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
