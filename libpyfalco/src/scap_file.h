/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capture files (.scap): the block reader (scap_reader.c), the event converter that turns any
 * producer's events into pyfalco's exit-only model (scap_convert.c), and the writer
 * (scap_writer.c). The format is described in ../shared/spec/SCAP_FORMAT.md; section numbers
 * below refer to it.
 *
 * A file is a run of blocks, little-endian:
 *
 *   u32 type | u32 total_len | body (total_len - 12 bytes, padding included) | u32 total_len
 *
 * The first block of every section is an SHB; metadata blocks follow, then event blocks.
 * Another SHB in the event stream starts a new section (concatenated files).
 */
#ifndef PYFALCO_SCAP_FILE_H
#define PYFALCO_SCAP_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "pyfalco_abi.h"
#include "pyfalco_events.h"

/* Block type ids (section 3); the *_OLD ids are the pre-release ones, still read. */
#define SCAP_BT_SHB 0x0A0D0D0Au
#define SCAP_BT_MI 0x201u
#define SCAP_BT_MI_OLD 0x8002ABCDu
#define SCAP_BT_PL_V1 0x202u
#define SCAP_BT_PL_V1_OLD 0x8000ABCDu
#define SCAP_BT_PL_V2 0x207u
#define SCAP_BT_PL_V2_OLD 0x8013ABCDu
#define SCAP_BT_PL_V3 0x209u
#define SCAP_BT_PL_V3_OLD 0x8014ABCDu
#define SCAP_BT_PL_V4 0x210u
#define SCAP_BT_PL_V5 0x211u
#define SCAP_BT_PL_V6 0x212u
#define SCAP_BT_PL_V7 0x213u
#define SCAP_BT_PL_V8 0x214u
#define SCAP_BT_PL_V9 0x215u
#define SCAP_BT_FDL 0x203u
#define SCAP_BT_FDL_OLD 0x8001ABCDu
#define SCAP_BT_FDL_V2 0x218u
#define SCAP_BT_EV 0x204u
#define SCAP_BT_EV_OLD 0x8010ABCDu
#define SCAP_BT_EV_V2 0x216u
#define SCAP_BT_EV_V2_LARGE 0x221u
#define SCAP_BT_EVF 0x208u
#define SCAP_BT_EVF_V2 0x217u
#define SCAP_BT_EVF_V2_LARGE 0x222u
#define SCAP_BT_IL 0x205u
#define SCAP_BT_IL_OLD 0x8011ABCDu
#define SCAP_BT_IL_V2 0x219u
#define SCAP_BT_UL 0x206u
#define SCAP_BT_UL_OLD 0x8012ABCDu
#define SCAP_BT_UL_V2 0x220u

#define SCAP_SHB_MAGIC 0x1A2B3C4Du
#define SCAP_SHB_MAGIC_SWAPPED 0x4D3C2B1Au
#define SCAP_SHB_BODY 16u          /* magic, major, minor, section_length */
#define SCAP_MI_BODY 180u          /* struct scap_machine_info (section 6) */
#define SCAP_EVT_V1_HDR 22u        /* v1 event header: no nparams */
#define SCAP_DF_STATE_ONLY 1u      /* EVF dump_flags (section 11.1) */

/* Limits. A non-LARGE event block carries at most 64 KiB (READER_BUF_SIZE in libs); LARGE event
 * blocks and metadata blocks are capped so that a corrupt length cannot make us allocate
 * without bound. Block bodies are read in steps, so a huge length in a truncated file fails at
 * the end of the data, having allocated only what was there. */
#define SCAP_MAX_SMALL_BLOCK (65536u + 8u)
#define SCAP_MAX_BLOCK (256u << 20)
#define SCAP_READ_STEP (1u << 20)
/* zlib's buffer for reading and writing files (gzbuffer). The fuzz build makes it small: zlib
 * allocates three times this per open file, which would dominate the cost of an execution. */
#ifndef SCAP_GZ_BUFFER
#define SCAP_GZ_BUFFER (256u * 1024u)
#endif

enum scap_block_kind {
	SCAP_KIND_UNKNOWN = 0,
	SCAP_KIND_SHB,
	SCAP_KIND_META,  /* MI, PL, FDL, IL, UL: exposed through the metadata API */
	SCAP_KIND_EVENT, /* EV, EVF (any version) */
};

enum scap_block_kind scap_block_kind(uint32_t type);

/* Little-endian loads and stores at any alignment. */
static inline uint16_t scap_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t scap_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t scap_rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void scap_wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void scap_wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void scap_wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Growable byte buffer. */
struct scap_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
int scap_buf_reserve(struct scap_buf *b, size_t cap); /* 0 or -ENOMEM */
void scap_buf_free(struct scap_buf *b);

/* ------------------------------------------------------------------------------------------ */
/* Block reader (scap_reader.c)                                                               */

struct scap_reader {
	gzFile gz;
	uint64_t off;        /* offset of the next block, in uncompressed bytes */
	uint64_t block_off;  /* offset of the block last returned */
	struct scap_buf buf; /* body of the block last returned (trailer included) */
	char err[512];
};

/* Opens a plain or gzip file. @return 0 or -errno (message in r->err). */
int scap_reader_open(struct scap_reader *r, const char *path);
void scap_reader_close(struct scap_reader *r);
/*
 * Reads the next block: *body points to the body (padding included, trailer excluded), valid
 * until the next call. Checks the length fields; the trailer is checked for every block but
 * event blocks (libs does not check those either). Returns 0, 1 at a clean end of file, or
 * -errno with a message naming the offset in r->err.
 */
int scap_reader_next(struct scap_reader *r, uint32_t *type, const uint8_t **body, uint32_t *body_len);
/* Validates an SHB body (magic, byte order, major version); -errno + message on failure. */
int scap_reader_check_shb(struct scap_reader *r, const uint8_t *body, uint32_t len);

/* ------------------------------------------------------------------------------------------ */
/* Event converter (scap_convert.c)                                                           */

struct scap_plan;
struct scap_pending;

struct scap_conv {
	struct scap_plan *plans[PPM_EVENT_MAX]; /* built on first use, per source event code */
	struct scap_pending *pending;           /* tid -> last enter event still waiting for its exit */
	size_t pending_cap;
	size_t pending_used;
	struct scap_buf v2;  /* a v1 event rewritten with a v2 header */
	struct scap_buf out; /* the converted event */
	uint64_t n_unknown;
	uint64_t n_malformed;
	char why[256]; /* why the last event was skipped */
};

enum scap_conv_result {
	SCAP_CONV_SKIPPED_UNKNOWN = -2,
	SCAP_CONV_SKIPPED_MALFORMED = -1,
	SCAP_CONV_CONSUMED = 0, /* an enter event, kept until its exit arrives */
	SCAP_CONV_EVENT = 1,    /* *out holds an exit-only event in the current layout */
};

void scap_conv_init(struct scap_conv *c);
void scap_conv_free(struct scap_conv *c);
/* Forgets pending enter events (a new section of a concatenated file). */
void scap_conv_reset(struct scap_conv *c);
/*
 * Converts one event record as found in an event block. v1 = the record has a 22-byte v1
 * header. *out points into the converter (or into evt itself when no change is needed), valid
 * until the next call. @return enum scap_conv_result, or -ENOMEM.
 */
int scap_conv_event(struct scap_conv *c, const uint8_t *evt, uint32_t avail, int v1, const uint8_t **out,
		    uint32_t *out_len);

/*
 * Checks a v2 event record: header, nparams, parameter lengths inside len. Fills lens/offs for
 * the first min(nparams, max) parameters. @return 0, or -1 with a reason in why.
 */
int scap_event_parse(const uint8_t *evt, uint32_t avail, uint32_t *lens, uint32_t *offs, uint32_t max, char *why,
		     size_t whylen);
/* Width of a parameter length for this event type: 4 for EF_LARGE_PAYLOAD events, else 2. */
static inline uint32_t scap_len_width(uint16_t type)
{
	return type < PPM_EVENT_MAX && (pyfalco_event_table[type].flags & EF_LARGE_PAYLOAD) ? 4 : 2;
}
/* The exit event paired with enter code `code`, or -1 when the event has no exit event. */
int scap_paired_exit(uint16_t code);

#define SCAP_MAX_PARAMS 64 /* parameters a converted event may have; more are passed on as they are */

#endif /* PYFALCO_SCAP_FILE_H */
