/* errors — names and texts for every error libbrokerc returns: -errno for
 * system and transport failures, BK_ERR(code) for a broker refusal (see
 * brokerd/client.h), and which of them are worth retrying.
 * Invariant: every string returned is static (never freed, never changes). */
#include "brokerd/client.h"

#include <errno.h>
#include <string.h>

/* Meaning of each wire ErrorCode, indexed by code: "NAME: meaning". */
static const char *const broker_errors[] = {
	[BROKERD__ERROR_CODE__OK] = "OK: no error",
	[BROKERD__ERROR_CODE__UNKNOWN_SERVER_ERROR] =
		"UNKNOWN_SERVER_ERROR: unexpected error in the broker (see its log)",
	[BROKERD__ERROR_CODE__INVALID_REQUEST] =
		"INVALID_REQUEST: the broker rejected a malformed request",
	[BROKERD__ERROR_CODE__UNSUPPORTED_VERSION] =
		"UNSUPPORTED_VERSION: the broker does not speak this version of the operation",
	[BROKERD__ERROR_CODE__UNKNOWN_OPERATION] =
		"UNKNOWN_OPERATION: the broker does not know this operation",
	[BROKERD__ERROR_CODE__FRAME_TOO_LARGE] =
		"FRAME_TOO_LARGE: request above the broker's max.request.bytes",
	[BROKERD__ERROR_CODE__UNKNOWN_TOPIC] = "UNKNOWN_TOPIC: the topic does not exist",
	[BROKERD__ERROR_CODE__UNKNOWN_PARTITION] =
		"UNKNOWN_PARTITION: the topic has no such partition",
	[BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS] =
		"TOPIC_ALREADY_EXISTS: a topic of that name exists",
	[BROKERD__ERROR_CODE__INVALID_TOPIC_NAME] =
		"INVALID_TOPIC_NAME: topic names are 1-249 of [A-Za-z0-9._-], not . or ..",
	[BROKERD__ERROR_CODE__INVALID_PARTITIONS] =
		"INVALID_PARTITIONS: partition count out of range",
	[BROKERD__ERROR_CODE__INVALID_CONFIG] =
		"INVALID_CONFIG: unknown topic config key or bad value",
	[BROKERD__ERROR_CODE__OFFSET_OUT_OF_RANGE] =
		"OFFSET_OUT_OF_RANGE: offset below the log start or above the high watermark",
	[BROKERD__ERROR_CODE__CORRUPT_RECORD_BATCH] =
		"CORRUPT_RECORD_BATCH: the record batch failed its CRC on the way",
	[BROKERD__ERROR_CODE__INVALID_RECORD_BATCH] =
		"INVALID_RECORD_BATCH: malformed or unsupported record batch",
	[BROKERD__ERROR_CODE__MESSAGE_TOO_LARGE] =
		"MESSAGE_TOO_LARGE: record batch above the broker's max.batch.bytes",
	[BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE] =
		"NOT_ENOUGH_SPACE: the broker's disk is full",
	[BROKERD__ERROR_CODE__STORAGE_ERROR] =
		"STORAGE_ERROR: the partition failed a write or fsync and is read-only",
	[BROKERD__ERROR_CODE__CORRUPT_DATA] =
		"CORRUPT_DATA: stored bytes failed their check",
	[BROKERD__ERROR_CODE__UNKNOWN_GROUP] =
		"UNKNOWN_GROUP: no offsets are committed for this group",
	[BROKERD__ERROR_CODE__INVALID_GROUP] =
		"INVALID_GROUP: group id empty or longer than 255 bytes",
	[BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS] =
		"TOO_MANY_CONNECTIONS: the broker's max.connections is reached",
	[BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN] =
		"BROKER_SHUTTING_DOWN: the broker is stopping",
};

const char *bk_error_name(int code)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&brokerd__error_code__descriptor, code);

	return v != NULL ? v->name : "?";
}

int bk_err_retriable(int err)
{
	switch (bk_err_code(err)) {
	case 0:
		break;
	case BROKERD__ERROR_CODE__NOT_ENOUGH_SPACE:
	case BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN:
	case BROKERD__ERROR_CODE__CORRUPT_RECORD_BATCH:
	case BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS:
		return 1;
	default:
		return 0;
	}
	switch (err) {
	case -ECONNRESET:
	case -ECONNREFUSED:
	case -ECONNABORTED:
	case -EPIPE:
	case -ENOTCONN:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -EHOSTDOWN:
	case -ENETUNREACH:
	case -ENETDOWN:
	case -ENETRESET:
	case -EAGAIN:
	case -EINTR:
	case -ENOBUFS:
		return 1;
	default:
		return 0;
	}
}

const char *bk_strerror(int err)
{
	int code = bk_err_code(err);

	if (code > 0) {
		if ((size_t)code < sizeof(broker_errors) / sizeof(broker_errors[0]) &&
		    broker_errors[code] != NULL)
			return broker_errors[code];
		return "broker error with an unknown code (a newer broker?)";
	}
	switch (err) {
	case 0:
		return "success";
	case -EPROTO:
		return "the broker's response is not valid protocol";
	case -ECONNRESET:
	case -EPIPE:
		return "the broker closed the connection";
	case -ECONNREFUSED:
		return "connection refused: is brokerd running at that address?";
	case -ETIMEDOUT:
		return "timed out waiting for the broker";
	case -EINVAL:
		return "invalid argument (a bad record, setting, or host:port address)";
	case -ENOBUFS:
		return "producer buffer full (buffer_memory): flush or retry later";
	case -EMSGSIZE:
		return "message too large for the broker's max.batch.bytes";
	case -ESHUTDOWN:
		return "the producer is closing";
	case -EDEADLK:
		return "called from a delivery callback: would wait for itself";
	default:
		return strerror(-err);
	}
}
