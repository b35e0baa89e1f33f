// Package file is seed 002's file service as pure state machines: a UDP
// server with a TCP-like handshake and teardown, several clients at
// once, a command menu (help, time, about, ls, get, chat, exit) and
// acknowledged, retransmitted file transfer. Where the seed used three
// ports and resent every chunk every 100 ms, every client here has one
// session of spec/rudp (reliable, congestion-controlled, over the
// server's one UDP port), and every download is verified with SHA-256.
//
// # Wire format
//
// Each session carries, in each direction, a byte stream of frames:
//
//	0      type      u8
//	1-4    length    u32, big-endian: the body's length
//	5-..   body      length bytes
//
// A body is at most 64 KiB, except DATA's (1 MiB). Client to server:
//
//	0x01 CMD    a command line, UTF-8: "help", "time", "about",
//	            "ls" [" " DIR], "chat", "exitchat"
//	0x02 GET    offset u64 | prefix [32] | name (UTF-8, 1-1024 bytes):
//	            download name; if offset > 0, the client already holds
//	            offset bytes whose SHA-256 is prefix
//	0x03 SAY    a chat line for the server's console, UTF-8
//
// Server to client:
//
//	0x81 REPLY  status u8 (0 ok, 1 error) | text, UTF-8: the answer to a
//	            CMD, or the failure of a GET
//	0x82 FILE   size u64 | offset u64 | name: a GET succeeds; the bytes
//	            from offset to size follow in DATA frames
//	0x83 DATA   the next bytes of the file
//	0x84 END    SHA-256 [32] of the whole file (all size bytes)
//	0x85 CHAT   a chat line from the server's console
//
// Every CMD and GET gets exactly one answer, in order: a REPLY, or
// FILE, DATA..., END (a REPLY with status 1 may also end a transfer
// early: the file could not be read). A client that wants several
// things queues its requests; the server answers them one at a time, in
// order, each only once the answers before it are done and the session
// holds less than SendBuffer unacknowledged bytes; at most MaxQueued may
// wait, and one more is a protocol error. CHAT and SAY travel in
// between. A frame of an unknown or wrong-direction type, or a body too
// long, is a protocol error: the receiver answers what it can and closes
// (server) or resets (client) the session. So, for a client, is a FILE
// whose name is not the GET's, whose offset is neither 0 nor the one
// asked, whose offset exceeds its size or whose size exceeds 2^62, and a
// REPLY status above 1. A DATA frame carries at most Chunk bytes (64 KiB
// by default).
//
// # Resuming and verifying
//
// A GET with offset > 0 asks the server to hash the first offset bytes
// of its file (in HashStep pieces, one per step, so a long prefix does
// not stall other sessions). If the hash equals prefix, FILE carries the
// client's offset and only the rest is sent; if not (the partial file is
// someone else's, or corrupt), or offset > size (compared unsigned: any
// u64 is an offset), FILE carries offset 0 and the whole file follows.
// Either way END is the SHA-256 of the whole file, which the client
// checks against its own hash (carried over from the prefix: the "get"
// command's Data is that hash's state). A client reports "file-done"
// only if they match; anything else is "file-error" and nothing it
// received may be kept as the file. END is sent only if the file's size
// and modification time are those it had when it was opened: the digest
// is of the bytes sent, and a file rewritten in place mid-transfer would
// make them a mix of two versions; the transfer fails instead ("the file
// changed while it was being sent").
//
// # Files
//
// The server reads only through an fs.FS given to NewServer (cmd passes
// os.Root's, which refuses symlinks that are absolute or step out of
// the root on their way), and only names ValidName accepts: UTF-8,
// relative, slash-separated, no "." or ".." element, no empty element,
// no backslash or control character (C0, DEL or C1, which a terminal
// would obey), at most 1024 bytes; and only regular files, which it checks with Stat before it
// opens anything (opening a FIFO would block the machine's runner, and
// every session with it). In the simulator and in replay, the FS
// is Synthetic(ServerConfig.Files): files of a given size whose bytes are
// a function of a seed (SynthBytes), so a trace header records a root in
// a few bytes. "ls" lists a directory's regular files and directories
// (symlinks followed if they stay inside the root) whose names ValidName
// accepts: what it lists can be fetched, and a name cannot forge lines
// of the listing.
//
// # States
//
// Client: at start it binds an ephemeral UDP port and dials the server;
// commands issued before the handshake completes are queued. Per
// request: waiting for the answer; for a GET, then receiving (from FILE
// to END). "exit" closes the session's sending side; the server closes
// its side once every request is answered, and the client exits when the
// session has closed (cleanly, or with the session's error).
//
// Server, per session: idle; transferring (verifying the prefix, then
// sending); closing. Every answer, REPLY or DATA, is queued in the
// session only while it holds less than SendBuffer unacknowledged bytes
// (DATA is read from the file only then), so the file service's own
// memory is bounded, per session, by SendBuffer plus one frame and
// MaxQueued requests of at most 64 KiB, whatever a client asks for, and
// a slow client slows only itself. DATA has a tighter budget that grows
// as the client acknowledges: two frames plus twice the bytes
// acknowledged, up to SendBuffer, so that it reaches SendBuffer within a
// few round trips of a real download, while a session whose client takes
// nothing holds one or two frames (TestGetBudgetGrowsWithAcknowledgments).
// Before, 1,088 sessions that each asked for a large file and never
// acknowledged held a server at 1.1 GB, about 1 MB each; the session
// under it (spec/rudp) keeps its unacknowledged packets, the same bytes.
// MaxSessions (1024) and the per-address limit (64) bound the rest. The console's "say" command sends CHAT to every session
// in chat mode (after "chat", until "exitchat"); SAY lines are reported
// as "say" events.
package file
