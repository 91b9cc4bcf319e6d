/*
 * writer/sync/proto_conv.c - JSON document <-> flagshm.v1.Document, driven by
 * the protobuf-c descriptors (see proto_conv.h for the mapping).
 *
 * Three message shapes are not plain JSON objects:
 *  - Value: a bare JSON value (bool, number, string; anything else is
 *    carried as JSON text in json_value);
 *  - list wrappers (a message whose only field is `repeated items`): a JSON
 *    array whose presence matters ("conditions": [] is not "no conditions");
 *  - map entries (`map<string, M>`): the members of a JSON object.
 * Messages are built with malloc and freed with
 * protobuf_c_message_free_unpacked(), so a half-built message on an error
 * path frees like an unpacked one.
 */
#include "proto_conv.h"

#include "budget.h"
#include "compile.h"
#include "flagshm.h"
#include "flagshm.pb-c.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 512
#define NAME_MAX_LEN 64

typedef struct conv {
	char path[PATH_MAX_LEN];
	size_t plen;
	char *err;
	size_t errlen;
	const wc_budget *budget; /* decoding: an allocation it refused is no OOM */
} conv;

/* Report "PATH: message" once (the first failure is the cause) and return RC. */
__attribute__((format(printf, 3, 4))) static int fail(conv *c, int rc, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!c->err || c->errlen == 0)
		return rc;
	if (c->plen)
		n = snprintf(c->err, c->errlen, "%s: ", c->path);
	if (n < 0 || (size_t)n >= c->errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return rc;
}

static int oom(conv *c)
{
	if (c->budget && c->budget->hit)
		return fail(c, FLAGSHM_EINVAL,
			    "the document needs more than %zu bytes of memory once converted to "
			    "JSON (%d times its size plus %u MiB, at most %d times doc-bytes): a "
			    "body this dense in small messages is refused",
			    c->budget->limit, WC_BUDGET_PROTO, WC_BUDGET_FLOOR >> 20, WC_BUDGET_DOC);
	return fail(c, FLAGSHM_ENOMEM, "out of memory");
}

/* Append ".key" (or "key" at the root) or "[i]" to the path; returns the
 * length to restore with path_pop. A path too long is cut, never overrun. */
static size_t path_key(conv *c, const char *key)
{
	size_t saved = c->plen;
	int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "%s%s", c->plen ? "." : "",
			 key);
	if (n > 0)
		c->plen = strnlen(c->path, sizeof c->path - 1);
	return saved;
}

static size_t path_idx(conv *c, size_t i)
{
	size_t saved = c->plen;
	int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "[%zu]", i);
	if (n > 0)
		c->plen = strnlen(c->path, sizeof c->path - 1);
	return saved;
}

static void path_pop(conv *c, size_t saved)
{
	c->plen = saved;
	c->path[saved] = '\0';
}

/* "rollout_percentage" -> "rolloutPercentage": the JSON name of a field. */
static void camel(const char *snake, char *out, size_t n)
{
	size_t o = 0;
	bool up = false;

	for (const char *p = snake; *p && o + 1 < n; p++) {
		if (*p == '_') {
			up = true;
			continue;
		}
		out[o++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
		up = false;
	}
	out[o] = '\0';
}

static bool is_value(const ProtobufCMessageDescriptor *d)
{
	return d == &flagshm__v1__value__descriptor;
}

static bool is_list_wrapper(const ProtobufCMessageDescriptor *d)
{
	return d->n_fields == 1 && d->fields[0].label == PROTOBUF_C_LABEL_REPEATED &&
	       strcmp(d->fields[0].name, "items") == 0;
}

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
	size_t n = strlen(d->name);
	return d->n_fields == 2 && strcmp(d->fields[0].name, "key") == 0 &&
	       strcmp(d->fields[1].name, "value") == 0 && n > 5 &&
	       strcmp(d->name + n - 5, "Entry") == 0;
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
		return sizeof(int64_t);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 0; /* not used by flagshm.proto */
	}
}

static void *at(const void *msg, unsigned off)
{
	return (char *)msg + off;
}

/* ------------------------------------------------------------ JSON -> proto */

static int enc_msg(conv *c, const ProtobufCMessageDescriptor *d, json_t *j, ProtobufCMessage **out);

static ProtobufCMessage *new_msg(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);
	if (m)
		protobuf_c_message_init(d, m);
	return m;
}

static int enc_string(conv *c, json_t *v, char **out)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return fail(c, FLAGSHM_EINVAL, "expected a string");
	s = json_string_value(v);
	n = json_string_length(v);
	if (strlen(s) != n)
		return fail(c, FLAGSHM_EINVAL, "a string with a NUL byte");
	*out = strdup(s);
	return *out ? 0 : oom(c);
}

static int enc_int64(conv *c, json_t *v, int64_t *out)
{
	double d;

	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	d = json_is_real(v) ? json_real_value(v) : NAN;
	if (d == trunc(d) && fabs(d) < 9007199254740992.0) {
		*out = (int64_t)d;
		return 0;
	}
	return fail(c, FLAGSHM_EINVAL, "expected an integer");
}

/* One element or singular field of type f->type from V into SLOT. */
static int enc_one(conv *c, const ProtobufCFieldDescriptor *f, json_t *v, void *slot)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return fail(c, FLAGSHM_EINVAL, "expected true or false");
		*(protobuf_c_boolean *)slot = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!json_is_number(v))
			return fail(c, FLAGSHM_EINVAL, "expected a number");
		*(double *)slot = json_number_value(v);
		return 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
		return enc_int64(c, v, slot);
	case PROTOBUF_C_TYPE_STRING:
		return enc_string(c, v, slot);
	case PROTOBUF_C_TYPE_MESSAGE:
		return enc_msg(c, f->descriptor, v, slot);
	default:
		return fail(c, FLAGSHM_EINVAL, "field type %d is not supported", (int)f->type);
	}
}

/* A map<string, M> field from the JSON object V. */
static int enc_map(conv *c, const ProtobufCFieldDescriptor *f, json_t *v, size_t *n,
		   ProtobufCMessage ***arr)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	const char *key;
	json_t *val;
	size_t i = 0;

	if (!json_is_object(v))
		return fail(c, FLAGSHM_EINVAL, "expected an object");
	*arr = calloc(json_object_size(v) + 1, sizeof **arr);
	if (!*arr)
		return oom(c);
	json_object_foreach(v, key, val) {
		ProtobufCMessage *e = new_msg(ed);
		size_t saved;
		int rc;

		if (!e)
			return oom(c);
		(*arr)[i++] = e;
		*n = i;
		saved = path_key(c, key);
		*(char **)at(e, ed->fields[0].offset) = strdup(key);
		rc = *(char **)at(e, ed->fields[0].offset) ? 0 : oom(c);
		if (rc == 0)
			rc = enc_one(c, &ed->fields[1], val, at(e, ed->fields[1].offset));
		path_pop(c, saved);
		if (rc)
			return rc;
	}
	return 0;
}

/* Field F of message M from the JSON value V (present, not null). */
static int enc_field(conv *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *v)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t *n = at(m, f->quantifier_offset);
		void **arr = at(m, f->offset);
		size_t esz = elem_size(f->type);

		if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor))
			return enc_map(c, f, v, n, (ProtobufCMessage ***)arr);
		if (!json_is_array(v))
			return fail(c, FLAGSHM_EINVAL, "expected an array");
		if (esz == 0)
			return fail(c, FLAGSHM_EINVAL, "field type %d is not supported", (int)f->type);
		*arr = calloc(json_array_size(v) + 1, esz);
		if (!*arr)
			return oom(c);
		for (size_t i = 0; i < json_array_size(v); i++) {
			size_t saved = path_idx(c, i);
			int rc = enc_one(c, f, json_array_get(v, i), (char *)*arr + i * esz);
			path_pop(c, saved);
			*n = i + 1; /* element i is freeable now, even half-built */
			if (rc)
				return rc;
		}
		return 0;
	}
	if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE &&
	    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
		*(protobuf_c_boolean *)at(m, f->quantifier_offset) = 1;
	return enc_one(c, f, v, at(m, f->offset));
}

static int enc_value(conv *c, json_t *j, ProtobufCMessage **out)
{
	Flagshm__V1__Value *v = (Flagshm__V1__Value *)new_msg(&flagshm__v1__value__descriptor);

	if (!v)
		return oom(c);
	*out = &v->base;
	switch (json_typeof(j)) {
	case JSON_TRUE:
	case JSON_FALSE:
		v->kind_case = FLAGSHM__V1__VALUE__KIND_BOOL_VALUE;
		v->bool_value = json_is_true(j);
		return 0;
	case JSON_INTEGER:
	case JSON_REAL:
		v->kind_case = FLAGSHM__V1__VALUE__KIND_NUMBER_VALUE;
		v->number_value = json_number_value(j);
		return 0;
	case JSON_STRING:
		v->kind_case = FLAGSHM__V1__VALUE__KIND_STRING_VALUE;
		return enc_string(c, j, &v->string_value);
	default:
		v->kind_case = FLAGSHM__V1__VALUE__KIND_JSON_VALUE;
		v->json_value = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		return v->json_value ? 0 : oom(c);
	}
}

static const ProtobufCFieldDescriptor *field_by_json_name(const ProtobufCMessageDescriptor *d,
							    const char *key)
{
	char name[NAME_MAX_LEN];

	for (unsigned i = 0; i < d->n_fields; i++) {
		camel(d->fields[i].name, name, sizeof name);
		if (strcmp(name, key) == 0)
			return &d->fields[i];
	}
	return NULL;
}

static int enc_msg(conv *c, const ProtobufCMessageDescriptor *d, json_t *j, ProtobufCMessage **out)
{
	const char *key;
	json_t *v;
	ProtobufCMessage *m;

	if (is_value(d))
		return enc_value(c, j, out);
	m = new_msg(d);
	if (!m)
		return oom(c);
	*out = m;
	if (is_list_wrapper(d))
		return enc_field(c, m, &d->fields[0], j);
	if (!json_is_object(j))
		return fail(c, FLAGSHM_EINVAL, "expected an object");
	json_object_foreach(j, key, v) {
		const ProtobufCFieldDescriptor *f = field_by_json_name(d, key);
		size_t saved = path_key(c, key);
		int rc;

		if (!f)
			rc = fail(c, FLAGSHM_EINVAL, "unknown field");
		else if (json_is_null(v) && !(f->type == PROTOBUF_C_TYPE_MESSAGE && is_value(f->descriptor)))
			rc = fail(c, FLAGSHM_EINVAL, "null is not a value here (leave the field out)");
		else
			rc = enc_field(c, m, f, v);
		path_pop(c, saved);
		if (rc)
			return rc;
	}
	return 0;
}

int ws_proto_encode(const json_t *doc, uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
	conv c = {.err = err, .errlen = errlen};
	ProtobufCMessage *m = NULL;
	json_t *obj = (json_t *)doc;
	size_t size;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (!doc)
		return fail(&c, FLAGSHM_EINVAL, "no document");
	if (json_is_array(doc)) { /* the seed's bare array of flags */
		obj = json_object();
		if (!obj || json_object_set(obj, "flags", (json_t *)doc) < 0) {
			json_decref(obj);
			return oom(&c);
		}
	} else if (!json_is_object(doc)) {
		return fail(&c, FLAGSHM_EINVAL, "a document is a JSON object or an array of flags");
	}
	rc = enc_msg(&c, &flagshm__v1__document__descriptor, obj, &m);
	if (obj != doc)
		json_decref(obj);
	if (rc == 0) {
		size = protobuf_c_message_get_packed_size(m);
		*out = malloc(size ? size : 1);
		if (*out) {
			*outlen = protobuf_c_message_pack(m, *out);
		} else {
			rc = oom(&c);
		}
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* ------------------------------------------------------------ proto -> JSON */

static json_t *dec_msg(conv *c, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m,
		       int *rc);

/* An integral double exact in a double comes back as a JSON integer (the
 * JSON form wrote it as one); -0 stays a real. */
static json_t *dec_number(double d)
{
	if (d == trunc(d) && fabs(d) < 9007199254740992.0 && !(d == 0 && signbit(d)))
		return json_integer((json_int_t)d);
	return json_real(d);
}

static json_t *dec_string(conv *c, const char *s, int *rc)
{
	json_t *j = json_string(s);
	if (!j)
		*rc = fail(c, FLAGSHM_EINVAL, "a string that is not UTF-8");
	return j;
}

static json_t *dec_value(conv *c, const Flagshm__V1__Value *v, int *rc)
{
	json_error_t jerr;
	json_t *j;

	switch (v->kind_case) {
	case FLAGSHM__V1__VALUE__KIND_BOOL_VALUE:
		return json_boolean(v->bool_value);
	case FLAGSHM__V1__VALUE__KIND_NUMBER_VALUE:
		if (!isfinite(v->number_value)) {
			*rc = fail(c, FLAGSHM_EINVAL, "a number that is not finite");
			return NULL;
		}
		return dec_number(v->number_value);
	case FLAGSHM__V1__VALUE__KIND_STRING_VALUE:
		return dec_string(c, v->string_value, rc);
	case FLAGSHM__V1__VALUE__KIND_JSON_VALUE:
		j = json_loads(v->json_value, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
		if (!j && c->budget && c->budget->hit)
			*rc = oom(c);
		else if (!j)
			*rc = fail(c, FLAGSHM_EINVAL, "json_value is not JSON: %s", jerr.text);
		return j;
	default:
		*rc = fail(c, FLAGSHM_EINVAL, "a value with no kind");
		return NULL;
	}
}

static json_t *dec_one(conv *c, const ProtobufCFieldDescriptor *f, const void *slot, int *rc)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)slot);
	case PROTOBUF_C_TYPE_DOUBLE:
		if (!isfinite(*(const double *)slot)) {
			*rc = fail(c, FLAGSHM_EINVAL, "a number that is not finite");
			return NULL;
		}
		return dec_number(*(const double *)slot);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
		return json_integer((json_int_t) * (const int64_t *)slot);
	case PROTOBUF_C_TYPE_STRING:
		return dec_string(c, *(char *const *)slot, rc);
	case PROTOBUF_C_TYPE_MESSAGE:
		return dec_msg(c, f->descriptor, *(ProtobufCMessage *const *)slot, rc);
	default:
		*rc = fail(c, FLAGSHM_EINVAL, "field type %d is not supported", (int)f->type);
		return NULL;
	}
}

static json_t *dec_map(conv *c, const ProtobufCFieldDescriptor *f, size_t n,
		       ProtobufCMessage *const *arr, int *rc)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	json_t *obj = json_object();

	if (!obj) {
		*rc = oom(c);
		return NULL;
	}
	for (size_t i = 0; i < n && *rc == 0; i++) {
		const char *key = *(char *const *)at(arr[i], ed->fields[0].offset);
		const void *vslot = at(arr[i], ed->fields[1].offset);
		size_t saved;
		json_t *v;

		if (!key)
			key = "";
		saved = path_key(c, key);
		if (json_object_get(obj, key)) {
			*rc = fail(c, FLAGSHM_EINVAL, "duplicate key");
		} else if (!*(ProtobufCMessage *const *)vslot) {
			*rc = fail(c, FLAGSHM_EINVAL, "a map entry with no value");
		} else if ((v = dec_one(c, &ed->fields[1], vslot, rc))) {
			if (json_object_set_new(obj, key, v) < 0)
				*rc = fail(c, FLAGSHM_EINVAL, "a key that is not UTF-8");
		}
		path_pop(c, saved);
	}
	if (*rc) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Field F of M as JSON, or NULL with *rc 0 when absent (or empty: for a
 * plain repeated field an empty list means no list). */
static json_t *dec_field(conv *c, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
			 int *rc)
{
	const void *slot = at(m, f->offset);

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)at(m, f->quantifier_offset);
		const char *arr = *(char *const *)slot;
		size_t esz = elem_size(f->type);
		json_t *a;

		if (n == 0)
			return NULL;
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor))
			return dec_map(c, f, n, (ProtobufCMessage *const *)arr, rc);
		a = json_array();
		for (size_t i = 0; a && i < n && *rc == 0; i++) {
			size_t saved = path_idx(c, i);
			json_t *v = dec_one(c, f, arr + i * esz, rc);
			if (v && json_array_append_new(a, v) < 0)
				*rc = oom(c);
			path_pop(c, saved);
		}
		if (!a)
			*rc = oom(c);
		if (*rc) {
			json_decref(a);
			return NULL;
		}
		return a;
	}
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		if (*(const uint32_t *)at(m, f->quantifier_offset) != f->id)
			return NULL;
	} else if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
		if (!*(void *const *)slot)
			return NULL;
	} else if (!*(const protobuf_c_boolean *)at(m, f->quantifier_offset)) {
		return NULL;
	}
	return dec_one(c, f, slot, rc);
}

static json_t *dec_msg(conv *c, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m,
		       int *rc)
{
	char name[NAME_MAX_LEN];
	json_t *obj;

	if (is_value(d))
		return dec_value(c, (const Flagshm__V1__Value *)m, rc);
	if (is_list_wrapper(d)) {
		json_t *a = dec_field(c, m, &d->fields[0], rc);
		return a || *rc ? a : json_array(); /* given but empty */
	}
	obj = json_object();
	if (!obj) {
		*rc = oom(c);
		return NULL;
	}
	for (unsigned i = 0; i < d->n_fields && *rc == 0; i++) {
		size_t saved;
		json_t *v;

		camel(d->fields[i].name, name, sizeof name);
		saved = path_key(c, name);
		v = dec_field(c, m, &d->fields[i], rc);
		if (v && json_object_set_new(obj, name, v) < 0)
			*rc = oom(c);
		path_pop(c, saved);
	}
	if (*rc) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Read a base-128 varint at *P (before END); false when cut or too long. */
static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* Count the flags and segments entries on the wire, before anything is
 * unpacked: 0 (also for a bad wire format, which the unpack reports), or
 * FLAGSHM_EINVAL with the first entry past the limit in ERR. */
static int check_counts(const uint8_t *buf, size_t len, size_t max_flags, size_t max_segments,
			char *err, size_t errlen)
{
	const uint8_t *p = buf, *end = buf + len;
	size_t nflags = 0, nsegs = 0;

	while (p < end) {
		const uint8_t *at = p;
		uint64_t tag, n;

		if (!wire_varint(&p, end, &tag))
			return 0; /* bad wire format: the unpack says so */
		switch (tag & 7) {
		case 0:
			if (!wire_varint(&p, end, &n))
				return 0;
			break;
		case 1:
		case 5:
			n = (tag & 7) == 1 ? 8 : 4;
			if ((uint64_t)(end - p) < n)
				return 0;
			p += n;
			break;
		case 2:
			if (!wire_varint(&p, end, &n) || (uint64_t)(end - p) < n)
				return 0;
			p += n;
			if (tag >> 3 == 4 && ++nflags > max_flags) {
				snprintf(err, errlen,
					 "flags: more than the limit max_flags (%zu): flags[%zu] starts at "
					 "byte %zu of the flagshm.v1.Document; refused before unpacking",
					 max_flags, nflags - 1, (size_t)(at - buf));
				return FLAGSHM_EINVAL;
			}
			if (tag >> 3 == 3 && ++nsegs > max_segments) {
				snprintf(err, errlen,
					 "segments: more than the limit max_segments (%zu): segments[%zu] "
					 "starts at byte %zu of the flagshm.v1.Document; refused before "
					 "unpacking",
					 max_segments, nsegs - 1, (size_t)(at - buf));
				return FLAGSHM_EINVAL;
			}
			break;
		default:
			return 0; /* groups or garbage: the unpack says so */
		}
	}
	return 0;
}

int ws_proto_decode(const uint8_t *buf, size_t len, const wc_limits *lim, json_t **doc, char *err,
		    size_t errlen)
{
	wc_limits def = wc_limits_default();
	wc_budget budget;
	conv c = {.err = err, .errlen = errlen, .budget = &budget};
	Flagshm__V1__Document *m;
	json_t *obj;
	int rc = 0;

	*doc = NULL;
	if (lim && (rc = check_counts(buf, len, lim->max_flags, lim->max_segments, err, errlen)))
		return rc;
	wc_budget_init(&budget, len, WC_BUDGET_PROTO, (lim ? lim : &def)->max_doc_bytes);
	m = flagshm__v1__document__unpack(&budget.pb, len, buf);
	if (!m && budget.hit)
		return fail(&c, FLAGSHM_EINVAL,
			    "unpacking the flagshm.v1.Document needs more than %zu bytes of memory "
			    "(%d times its %zu bytes plus %u MiB, at most %d times doc-bytes): a "
			    "body this dense in small messages is refused",
			    budget.limit, WC_BUDGET_PROTO, len, WC_BUDGET_FLOOR >> 20, WC_BUDGET_DOC);
	if (!m)
		return fail(&c, FLAGSHM_EINVAL,
			    "not a flagshm.v1.Document (bad protobuf wire format, %zu bytes)", len);
	wc_budget_json(&budget);
	obj = dec_msg(&c, &flagshm__v1__document__descriptor, &m->base, &rc);
	wc_budget_json(NULL);
	if (obj && !m->has_format_version && !m->epoch && m->n_segments == 0) {
		/* the seed's bare array of flags */
		json_t *flags = json_object_get(obj, "flags");
		json_t *arr = flags ? json_incref(flags) : json_array();
		json_decref(obj);
		obj = arr;
		if (!obj)
			rc = oom(&c);
	}
	else if (obj && !json_object_get(obj, "flags") &&
		 json_object_set_new(obj, "flags", json_array()) < 0)
		rc = oom(&c); /* a format-1 object always has its flags, maybe [] */
	protobuf_c_message_free_unpacked(&m->base, &budget.pb);
	if (rc) {
		json_decref(obj);
		return rc;
	}
	*doc = obj;
	return 0;
}
