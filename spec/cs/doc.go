// Package cs is seed 001's Client/Server file download as a pure state
// machine: the baseline the P2P protocol (package p2p) is measured
// against.
//
// # Wire format
//
// There is no control protocol (the seed: "没有设计控制协议，仅传输数据").
// A client opens a TCP connection to the server (port 52000 by default);
// the server at once sends the file, byte 0 to byte F-1, and then closes
// its side (FIN):
//
//	client -> server   TCP SYN; nothing else is required
//	server -> client   the F bytes of the file, in order, then FIN
//
// The end of the file is the end of the stream: a client knows it has the
// whole file when it reads EOF, so `nc HOST 52000 > out` is a complete
// client. A stream reset before the FIN means the download failed; the
// client has no way to tell a short file from a truncated one other than
// the FIN, which is why it reports the byte count and the MD5 of what it
// got.
//
// Bytes a client sends are read, counted and discarded, never buffered;
// a client that half-closes (nc at the end of its standard input) still
// gets the whole file.
//
// # The file
//
// A server serves the bytes it is given. A machine rebuilt from its
// config alone (a trace replay) is given the bytes its FileSpec
// generates: random bytes, deterministic in a seed, so that the
// simulator, the socket runner and a replay all see the same file without
// storing it. An empty FileSpec is an empty file; the seed's default,
// DefaultFileSize (10^7) bytes, is the command's and the simulator's, not
// the machine's. A server given a file from disk records its name (Path)
// instead: its trace replays only where that file is.
//
// # Server states
//
// Per connection:
//
//	SENDING --transport took the piece--> SENDING (queue the next piece)
//	SENDING --last piece taken--> CLOSED (FIN after the queued bytes)
//	CLOSED --the client's EOF or reset--> gone
//	CLOSED --no EOF for Stall--> reset (counted as "stalled": until
//	                          then it keeps its place against MaxStreams
//	                          and MaxPerAddr, since the kernel may still
//	                          hold a send buffer of the file for a client
//	                          that stopped reading near the end)
//	SENDING --reset--> gone (counted as "reset")
//	SENDING --nothing taken for Stall (10 min)--> reset (counted as
//	                          "stalled": a client that never reads
//	                          must not keep its place; swept every
//	                          Stall/4, the server's one timer)
//	SENDING --server stops--> reset (never a FIN: the end of the stream
//	                          is the end of the file, so a cut download
//	                          must not end like a whole one; the socket
//	                          runner keeps SO_LINGER 0 until the FIN, so
//	                          a server killed mid-file resets too)
//
// The server queues one piece (ServerConfig.Piece, 256 KiB) at a time and
// queues the next when the runner reports the stream writable, so a slow
// client costs no memory: pieces are slices of the one shared file.
// MaxStreams (4096) and MaxPerAddr (64) bound the clients.
//
// # Client states
//
//	CONNECTING --connected--> RECEIVING --EOF--> DONE (close, exit)
//	any --reset, refused, Idle without data--> exit with an error
//
// The client hashes what arrives with MD5 (the seed's checksum), keeps it
// in memory or hands it to the application as it comes if asked, and in
// the simulator compares it byte for byte with the file it expects. After
// the download it may Linger before exiting: a simulated node that exits
// resets its connections, where a kernel would finish the FIN handshake.
package cs
