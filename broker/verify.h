/* verify — offline check of a data directory (`brokerd --verify`): every
 * batch's framing and CRC, dense offsets, every index file; read-only. */
#ifndef BROKER_VERIFY_H
#define BROKER_VERIFY_H

#include <stdint.h>
#include <stdio.h>

/* Scan every partition directory under data_dir, printing one line per
 * corrupt range ("CORRUPT <dir>/<segment>.log position P: offsets A..B"),
 * per bad tail and per index the next start would rebuild, then a summary
 * line, to `out`.  Refuses (-EBUSY, message on stderr) while a broker holds
 * the directory's lock, and holds it shared meanwhile.  Returns 0 clean,
 * 1 corruption found, or -errno (could not check; message on stderr). */
int verify_data_dir(const char *data_dir, uint32_t max_batch, FILE *out);

#endif
