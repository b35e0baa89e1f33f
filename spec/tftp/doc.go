// Package tftp is the Trivial File Transfer Protocol as pure state
// machines: RFC 1350 with option negotiation (RFC 2347), blksize (RFC
// 2348), timeout and tsize (RFC 2349) and windowsize (RFC 7440), octet
// mode only. The server serves the file service's root (spec/file) to
// standard clients (curl, tftp-hpa, atftp); the client is what `netspec
// tftp get` runs.
//
// # Wire format
//
// Every packet is one UDP datagram starting with a 2-byte opcode, big
// endian. Strings are bytes ending in a NUL (0x00).
//
//	RRQ   (1)  0-1 opcode | filename | 0 | mode | 0 | [ option | 0 | value | 0 ]...
//	WRQ   (2)  same as RRQ
//	DATA  (3)  0-1 opcode | 2-3 block number | 4-.. 0 to blksize bytes
//	ACK   (4)  0-1 opcode | 2-3 block number              (exactly 4 bytes)
//	ERROR (5)  0-1 opcode | 2-3 error code | message | 0
//	OACK  (6)  0-1 opcode | [ option | 0 | value | 0 ]...
//
// A request (filename, mode, options together) is at most 512 bytes
// (RFC 2347); mode is "octet" in any case ("netascii" and "mail" are
// refused). Options are case-insensitive names with decimal values
// (digits only: a sign makes the value invalid):
//
//	blksize     8..65464    bytes per DATA block (default 512)
//	windowsize  1..65535    DATA blocks sent per ACK (default 1; this
//	                        package asks and grants at most 4096, as
//	                        block numbers compare modulo 65536)
//	timeout     1..255      seconds between retransmissions
//	tsize       0..         the file's size: 0 in an RRQ asks for it,
//	                        a WRQ announces it, the OACK states it
//
// Error codes: 0 not defined (see message), 1 file not found, 2 access
// violation, 3 disk full or allocation exceeded, 4 illegal operation, 5
// unknown transfer ID, 6 file already exists, 7 no such user, 8 option
// negotiation refused. Decode rejects anything else that is not exactly
// these layouts: a string without its NUL (except an ERROR's message,
// which some implementations leave unterminated), a request without
// file name or mode, an option without a name (an empty value decodes;
// ParseOptions leaves it out of the OACK), more than 16 options, an ACK that is not 4 bytes, an unknown opcode.
//
// # A transfer
//
// A client sends its request from a fresh port to the server's port 69;
// the server answers from a fresh port of its own, on the address the
// request was sent to (the address it listens on, or, when that is
// unspecified, the request's Input.Local: on a multi-homed host the
// kernel's routing could pick another, which a client that checks the
// answer's source, or its firewall, would drop). The two ports are
// the transfer's IDs (TIDs): each end then talks only to the other's,
// answers a datagram from any other port that decodes as a TFTP packet
// with ERROR 5 (one that does not is dropped unanswered; never an ERROR
// with an ERROR, and never one larger than the datagram, shortened as
// refusals are below: a forged 4-byte ACK gets nothing) and goes on. A read, without options, then a write:
//
//	client                          server
//	RRQ "f" octet         ──▶  69
//	                      ◀──  TID  DATA 1 (512 bytes)
//	ACK 1                 ──▶  TID
//	                      ◀──  TID  DATA 2 (< 512 bytes: the last)
//	ACK 2                 ──▶  TID
//
//	WRQ "f" octet         ──▶  69
//	                      ◀──  TID  ACK 0
//	DATA 1 ... DATA n     ──▶  TID  each answered by its ACK
//
// With options the server answers an OACK listing the ones it accepts
// (blksize and windowsize lowered to its limits, timeout only up to its
// MaxTimeout, tsize with the file's size for a read, unless it is 0:
// curl refuses an OACK with tsize 0, and as the client sent it for a
// write); the client acknowledges an
// RRQ's OACK with ACK 0 and answers a WRQ's with DATA 1. A client may
// refuse an OACK with ERROR 8. The client accepts an OACK only if every
// option in it was asked for, blksize and windowsize no larger than
// asked, and timeout as asked. A server that ignores options answers as
// RFC 1350 says, and the defaults apply.
//
// The file is cut into blocks of blksize bytes numbered from 1; the
// last block is shorter than blksize, empty if the size is a multiple of
// it. Block numbers are 16 bits on the wire: after 65535 comes 0 (what
// curl, tftp-hpa and atftp do), so files of any size transfer; both
// ends count blocks in 64 bits and compare wire numbers modulo 65536.
//
// # Windows, retransmission and the Sorcerer's Apprentice
//
// The sender sends windowsize blocks after the last acknowledged one
// (go-back-N, RFC 7440 §4) and waits. The receiver acknowledges every
// windowsize-th block received in order, and the last block. A block
// that overtakes a missing one is kept (up to the window, and 4 MiB)
// and delivered when the gap fills; the gap is reported, with one ACK
// for the last block received in order after which the sender's next
// window starts, only on evidence of loss: a block three past the gap
// (TCP's three duplicate ACKs), the window's last block, or the file's.
// A duplicate block is acknowledged again only if the receiver's last
// ACK covered it (that ACK may have been lost and the sender resent),
// and once until progress or the receiver's own timeout: acknowledging
// a block the sender has not seen acknowledged would restart its window
// at every duplicate the network makes. An ACK moves the sender only if
// it acknowledges a block sent and not yet acknowledged; any other ACK
// (a duplicate, a stale one) is counted and ignored, never answered:
// answering duplicate ACKs with DATA is the Sorcerer's Apprentice bug
// (RFC 1123 §4.2.3.1) that doubles the traffic at every duplicate. So a
// block is sent at most windowsize x (Retries+1) times, and exactly
// once on a network that neither loses nor reorders. Both ends
// retransmit what they wait on (the request, the OACK, the window, the
// last ACK) after the timeout (the negotiated one, or Timeout), and give
// up after Retries retransmissions without progress; the server also
// ends, with an ERROR, any transfer older than MaxDuration (1h), so a
// client that ACKs just in time cannot hold a slot for ever. The receiver of
// the last block acknowledges it and dallies (RFC 1350 §6; the sender's
// resends come one, three, seven, fifteen and 23 timeouts later): the
// client for eight timeouts, the server for seventeen, twice the
// longest backoff and one, from the last block and again from each
// resend of it,
// answering every retransmitted last block with its ACK again. A
// retransmission timer doubles with each timeout since the last
// progress, up to 8 times the timeout (RFC 1123 4.2.3.2's backoff).
//
// # Server
//
// States of a transfer: binding (its fresh socket is being opened);
// OACK sent (a read with options, waiting for ACK 0); sending or
// receiving blocks; dallying (a write whose last block was committed
// and acknowledged). A transfer ends when its last block is
// acknowledged, on an ERROR from its client, after Retries
// retransmissions without progress (the per-transfer timeout), or when
// the server stops (clients that have answered get ERROR 0). Its socket
// is then closed. A transfer that times out ends without an ERROR (its
// client is not answering). Refusals: a malformed or over-long request
// gets ERROR 4, a name outside the root ERROR 2, a busy server or a mode
// other than octet ERROR 0. A request's source is not validated, so a
// refusal is never larger than the request: when the message does not
// fit, the code's name (RFC 1350's, "access violation") takes its place,
// or nothing if that does not fit either (the code stays), and a request
// shorter than five bytes gets nothing (all counted).
//
// Files are read through an io/fs.FS given to NewServer (cmd passes the
// os.Root-confined one of impl/rootfs, which refuses symlinks that leave
// the root; without one, ServerConfig.Files, a synthetic root described
// in a few bytes of JSON for the simulator and replay). A requested name
// must pass file.ValidName before anything is opened: relative,
// slash-separated, no "." or ".." element, no backslash or control
// character; absolute names are refused (error 2), only regular files
// are served (a name is checked with Stat before it is opened: opening
// a FIFO would block the machine's runner), and the server reads blocks
// at offsets, so a window's retransmission costs no memory. A file that
// shrinks during a transfer ends it with an error rather than a short
// file.
//
// Writes, only with ServerConfig.AllowWrite, go through a Store given to
// NewServer (cmd's writes to a temporary name in the root and links it
// into place only once the last block arrived; without one, uploads are
// hashed and discarded). An existing name is never overwritten (error
// 6); an upload is bounded by MaxWriteSize (error 3), announced by tsize
// or not. An upload that announced its size (tsize above 0) must be
// exactly that long: a block past it, or a last block that leaves it
// short, ends the transfer with error 4 and nothing is committed. A
// tsize of 0 says the size is unknown (curl -T - from stdin sends it). The last block is
// acknowledged only after the Store committed the file: a client that
// saw its last ACK knows the file is there.
//
// # Defences
//
// TFTP answers unauthenticated datagrams, so a request with a forged
// source aims the answer at a victim (RFC 1350 servers are reflectors,
// a 512-byte DATA for a 20-byte request). This server:
//
//   - answers requests only: anything else arriving on port 69 is
//     dropped, as are datagrams from source ports below 1024 (other
//     reflectors) and port 0;
//   - refuses a bad request (malformed, too long, bad name, missing
//     file, busy) with one ERROR of a few dozen bytes from port 69, and
//     opens nothing;
//   - resends its first answer to a client that has not answered yet at
//     most FirstRetries times (default 1) instead of Retries: a forged
//     request draws at most two datagrams, and with options only small
//     OACKs, since DATA follows only the client's ACK 0. The transfer
//     then waits, quietly, for the rest of the Retries schedule (the
//     client's answers may have been lost too), no longer counted
//     against MaxUnverified, and gives way to a new request that needs
//     its place (as a dallying upload does). DATA on the transfer's
//     port (out of order too) or an ACK that counts is the client
//     answering, and starts the retry count afresh;
//   - keeps at most MaxUnverified (16) transfers whose client has not
//     answered and that still resend; requests beyond that are dropped
//     without a word to the sender (the log has a warning at most once
//     a second that counts them), and such a transfer that times out is
//     logged at debug level, not as a failed transfer's warning;
//   - ignores a request from a client port that already has a transfer
//     (a retransmitted or duplicated request): copies never multiply;
//     but a quiet one (above) answers the same request with its first
//     answer again, at most once between two timeouts, and one for
//     something else ends it (the client has moved on);
//   - bounds transfers (MaxTransfers, 64), transfers per client address
//     (MaxPerHost, 8; an upload that is only dallying is released, the
//     oldest first, to make room for a new request rather than have it
//     refused), block and window sizes (MaxBlksize, MaxWindowsize,
//     and MaxWindowBytes, 128 KiB a window, so a window fits the
//     receiver's socket buffer: 64 blocks of 1428 bytes, 2 of 65464),
//     the timeout option (MaxTimeout, 10s), and
//     uploads (MaxWriteSize): its state is bounded whatever arrives.
//
// Every dropped or refused datagram is counted (Counters) and logged at
// debug level.
//
// # Client
//
// Commands: "get NAME" downloads NAME and reports its bytes in "data"
// events, in order; "put NAME [LOCAL]" uploads LOCAL from the client's
// file system (or the command's Data); "exit" exits once the queued
// transfers are done. Transfers run one at a time, each from a fresh
// port. Each reports "file-start" (the negotiated parameters) and then
// "file-done" or "file-error": a download whose bytes differ in length
// from the tsize the server announced is an error, never a short or
// long file.
package tftp
