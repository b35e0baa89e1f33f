// Package p2p is seed 001's P2P file distribution, with the seed's
// messages, arguments and error ids, as pure state machines: a server
// (the seed's tracker, which also holds the whole file) and peers that
// download chunks from the server and from each other while serving the
// chunks they have.
//
// # Framing
//
// Every message travels on a TCP connection and starts with a header
// line:
//
//	header = OP *(SP ARG) CRLF
//	OP     = 1*UPPER             ; CHEL, SHEL, ... case-sensitive
//	ARG    = 1*VCHAR             ; a decimal (digits only, at most 16,
//	                             ; value < 2^53) unless said otherwise
//
// A header line is at most 4096 bytes, CRLF included. Receivers are
// lenient where the seed is vague: LF alone ends a line, runs of spaces
// and tabs separate arguments, empty lines between messages are skipped,
// and a header line left without its terminator for IdleFlush (200 ms)
// on a connection that has not spoken the extensions (XHEL) is taken as
// complete (a client written from the seed's description may send
// "CLREQ" with no CRLF, and wait for the answer; such a client sends a
// request in one write, so a line cut by the network and completed more
// than 200 ms later is the price, and draws an UNKNOWN_COMMAND).
//
// Some messages carry a body right after the header's CRLF:
//
//   - a JSON body (SHEL, CLRSP) is one compact JSON array. netspec writes
//     it on one line followed by CRLF. A receiver takes the body to end at
//     the bracket that closes the array, and then skips the CRLF if there
//     is one; so a seed-style sender that writes the JSON without a line
//     end, or with spaces (Python's json.dumps), is understood exactly.
//     Bodies are bounded (12 bytes per chunk of the file, plus 64 KiB).
//   - a raw body (DATA, PUSH, HASH) is exactly the number of bytes its header
//     announces, with no terminator after it.
//   - ERROR may be followed by one line of free text (the seed's optional
//     "补充错误信息"): a line after ERROR that the receiver would call
//     an unknown command (one not starting with an OP that side takes:
//     a peer's reply stream takes no CHEL, say) is that text, and is
//     skipped; one line at most. netspec never sends it.
//
// # The seed's messages
//
// The client side of a connection (the dialer) sends requests; the other
// side answers each, in order. Byte by byte (values are examples):
//
//	CHEL 51000\r\n
//	    "hello": the sender's listening port (1..65535). First on every
//	    connection. A server answers SHEL, a peer PHEL.
//	SHEL 10000000 16384\r\n[["10.0.0.2",51000],["10.0.0.3",51000]]\r\n
//	    the server's welcome: file size and chunk size in bytes, and a
//	    JSON array of online peers, each [ip, port] (netspec also reads
//	    "ip:port" strings). Chunk i is bytes [i*chunk, min((i+1)*chunk,
//	    size)); there are ceil(size/chunk) chunks.
//	PHEL\r\n
//	    a peer's welcome.
//	CLREQ\r\n
//	    "which chunks do you have?"; answered by
//	CLRSP\r\n[0,1,2,5]\r\n
//	    a JSON array of chunk ids.
//	DREQ 7\r\n
//	    "send chunk 7"; answered by DATA or by an ERROR:
//	    OFFSET_OVERFLOW if the chunk id is not below the chunk count,
//	    CHUNK_UNDOWNLOADED if the peer does not hold the chunk.
//	DATA 114688 16384\r\n<16384 bytes>
//	    the chunk at that byte offset: offset = id*chunk, size its length.
//	    The seed sends long chunks as a header and then "pure data
//	    messages" with no header: on a stream that is simply the size
//	    bytes following the header.
//	CHECK 9e107d9d372bb6826bd81d3542a419d6\r\n
//	    a client's MD5 of the whole file (32 hex digits, either case);
//	    the server answers CHECK with its own digest, in lower case, if
//	    they match, ERROR CHECKSUM_NOT_FIT if not.
//	ERROR UNKNOWN_COMMAND\r\n
//	    the answer to an unknown OP, bad arguments, or a message in the
//	    wrong state (anything but CHEL before CHEL, a second CHEL).
//
// A malformed line is answered with ERROR UNKNOWN_COMMAND and skipped; a
// line too long, or a body that is not what its header says, cannot be
// skipped (the stream has lost its framing) and ends the connection after
// that ERROR. A message that the receiving side never takes but whose
// raw body has a known length (DATA or PUSH sent to a server, HASH sent
// with a request) is answered with one ERROR UNKNOWN_COMMAND and its body
// skipped unread, up to 64 MiB, so the requests after it are understood.
//
// # Extensions
//
// netspec's extensions are new OPs; a node sends them only to a node that
// announced them, so a client or server written from the seed never sees
// one. The dialer pipelines "XHEL 1" after its CHEL; a peer dialing a
// peer says "XHEL 1 push": it takes chunks unasked (PUSH) on that
// connection (and, to the server, "XHEL 1 tree": see Trees). A node that
// speaks the extensions answers
//
//	XHEL 1 <64 hex digits> rate\r\n
//	    extension version 1; from the server, the root: the SHA-256 of the
//	    concatenated SHA-256 digests of all chunks, in order (a peer's
//	    XHEL has no root). "rate" says the sender paces its uploads by a
//	    known rate and needs no acknowledgments (see Pacing). Receivers
//	    ignore arguments they do not know.
//
// and a seed-style node answers ERROR UNKNOWN_COMMAND, after which the
// dialer speaks only the seed's protocol on that connection, one request
// at a time. (If the seed-style node chokes on the pipelined line and
// answers the CHEL itself with an ERROR, the dialer reconnects and sends
// CHEL alone. If it answers the CHEL and not the XHEL, as a node that
// takes one recv() for one message does, reading the pipelined lines as
// part of CHEL, the dialer gives up on the XHEL XhelTimeout (1 s) after
// the welcome, drops that connection and dials the node again at once
// with CHEL alone, as it does from then on, so that the answers of a
// node that was only slow never arrive on a connection speaking the
// seed's protocol.) On a connection where XHEL was answered:
//
//	HAVE 3 17 42\r\n   HAVE HASH 5\r\n
//	    the sender now holds these chunks (HASH: and the hash list). Sent
//	    by either side, unsolicited, never answered. Peers announce their
//	    new chunks to the neighbours downloading from them (not to their
//	    children in the trees), and report them to the server with
//	    whatever else goes to it, or after ReportEvery. A HAVE for a
//	    chunk just received is also the sender's acknowledgment (see
//	    Pacing), sent at once, except to a server that said "rate" and
//	    feeds the trees: it waits for nothing and picks nothing.
//	DANY\r\n
//	    to the server: "send me a chunk no peer has": the server picks, at
//	    random, a chunk no connected peer holds or is being sent, and
//	    answers with DATA; once every chunk is held somewhere it answers
//	    ERROR EXHAUSTED, and peers ask it with DREQ, one at a time, like
//	    any neighbour that holds everything. So the server sends each
//	    chunk once while the swarm can pass it on, and its uplink, the
//	    scarcest, carries no duplicates.
//	PUSH 114688 16384\r\n<16384 bytes>
//	    a chunk sent unasked, framed as DATA, by a peer to a neighbour
//	    whose XHEL said "push"; never answered. It may come between the
//	    answers on the connection, which stay in order. Peers push some
//	    of the chunks they get from the server (see Pushing); the
//	    receiver handles it as a DATA (checked, stored, acknowledged
//	    with HAVE if the sender did not say "rate"), and now knows the
//	    sender holds the chunk.
//	DCAN\r\n   DCAN 7\r\n
//	    to the server: withdraw a pending DANY, or the pending DREQ for
//	    chunk 7 (a peer that got the chunk elsewhere, or is complete).
//	    Never answered; an answer already on its way still comes.
//	HREQ\r\n
//	    "send the hash list"; answered by
//	HASH 611\r\n<611*32 bytes>
//	    the SHA-256 of every chunk, in order, which the receiver checks
//	    against the server's root; or by ERROR CHUNK_UNDOWNLOADED (a peer
//	    without the list) or ERROR BUSY (the server, which hands out at
//	    most HashSeeds lists per HashEvery: peers pass the list on).
//	ERROR BUSY\r\n
//	    also the answer to a DREQ when the peer's uplink already has
//	    BusyAt requests waiting, from this neighbour or others: ask
//	    someone else.
//
// The server answers an extension peer in the order it can, not the
// order asked: DANY and DREQ answers wait for its uplink, CHECK is
// answered at once. The peer matches answers by kind: a DATA answers the
// DREQ for its offset or else a DANY, EXHAUSTED a DANY, CHECK (or
// CHECKSUM_NOT_FIT) its CHECK, HASH (or BUSY) its HREQ. Peers answer in
// order, as the seed's protocol does.
//
// With the hash list, a peer checks every chunk as it arrives, the
// server's too: a chunk whose SHA-256 differs is dropped, fetched
// elsewhere, and its sender (if a peer) banned (its connections reset,
// its address never dialed again). Before the list, a chunk from the
// server is stored unchecked (the server, whose root vouches for the
// list, is trusted), and a chunk from a peer is stored with its digest
// but neither announced nor served until the list vouches for it (or
// rejects it, and its sender is banned), so waiting for the list never
// idles a download. Without a root (a seed-style server) only the final CHECK can
// tell, and a peer whose CHECK fails downloads again from the server
// alone.
//
// # Server states
//
// The server binds its port (52000) and holds the whole file. Per
// accepted connection:
//
//	ACCEPTED --CHEL--> ONLINE (SHEL sent; the peer's CHEL port joins the
//	         peer list, replacing an older connection from that address
//	         and port)
//	ACCEPTED: anything but CHEL is answered UNKNOWN_COMMAND; no CHEL
//	         within HelloTimeout (10 s): reset
//	ONLINE --XHEL--> EXTENDED (XHEL with the root; "XHEL 1 tree" with
//	         Expect set also takes a place in the trees: TREE, PARENT)
//	ONLINE, EXTENDED: CLREQ, DREQ, CHECK (and, EXTENDED, HAVE, DANY,
//	         DCAN, HREQ) are answered; DATA and HASH answers wait for the
//	         uplink (see Pacing), the others go at once
//	any --EOF, reset, framing lost, MaxUnread unread, MaxPending
//	         requests unread--> gone: it leaves the peer list, its
//	         pending answers are dropped
//
// CHECK is answered whatever the state after CHEL: the seed's client
// checks once it holds every chunk. The server never dials anyone.
//
// # Peer states
//
// A peer binds its listening port (51000), connects to the server (52000)
// and says CHEL+XHEL; SHEL gives the file's geometry and some peers. It
// connects to up to MaxOut of them (CHEL+XHEL+CLREQ); a peer that accepts
// a CHEL connects back to the new peer's port, as the seed does, so every
// pair of neighbours has a connection each way, up to MaxIn neighbours,
// at most MaxInPerAddr of them from one address; a connection that has
// not said CHEL within HelloTimeout (10 s) is reset, as on the server.
// Per connection it dialed:
//
//	DIALING --connected--> HELLO (CHEL sent) --SHEL|PHEL--> READY
//	READY: requests flow; answers are matched to requests in order
//	any --EOF, reset, violation, ReqTimeout--> gone: its requests go back
//	       to the pool, a chunk cut off mid-DATA gets strict priority, and
//	       the neighbour is dialed again after a backoff (the server too;
//	       its backoff, 250 ms doubling to 8 s, restarts only when a chunk
//	       comes from it, not at its welcome, so a server that welcomes
//	       and then breaks the protocol is not redialed every 250 ms). A
//	       peer with ServerWait set that has lost the server and got no
//	       chunk from anyone for ServerWait exits with an error.
//
// Chunk selection: a random chunk first, then the rarest among the
// neighbours, ties at random, interrupted chunks before all; each request
// goes to the neighbour expected to answer first (fewest of our requests
// times its recent latency), at most PeerDepth per neighbour (one for a
// seed-style neighbour, which is also polled with CLREQ every Poll) and
// MaxOutstanding in all, while the server is asked with up to ServerDepth
// DANYs (2; 4 with a single neighbour, 16 with none: the server's answers
// queue at the peer's downlink ahead of everything its neighbours send
// it). When every missing chunk is requested (endgame), a chunk whose
// request is late (four times that neighbour's latency, at least 100 ms)
// may be asked of a second neighbour, at most four at a time. With every
// chunk held, the peer sends CHECK; the server's CHECK answer is
// "verified", after which the peer keeps serving for Linger.
//
// # Pushing
//
// A chunk fresh from the server is held by its receiver alone, and every
// other peer wants it. Rather than announcing it and waiting for the
// DREQs (a HAVE and a DREQ, each queued behind chunk data on two links),
// the receiver pushes it to the neighbours whose XHEL said "push": to
// all of them when they are at most 3*PushTo (PushTo 2), so that in a
// small swarm no request for it is needed at all; with a few more (at
// most 3*PushTo+3), to as many of them, picked at random, as leave at
// most 3*PushTo+3 pushes waiting for the uplink, and at least PushTo;
// else to PushTo of them, picked at random, who pass it on as any
// chunk. Pushes go ahead
// of the answers the peer owes, paced like them; a push that has waited
// PushStale (60 ms) for the uplink is announced with HAVE instead, and a
// neighbour that announced or asked for the chunk meanwhile is not sent
// it. The others are told by HAVE as usual.
//
// # Trees
//
// Pulling pays, per chunk and per hop, for an announcement and a request
// that each wait behind chunk data on busy links; in a large swarm that
// is most of the gap to the bound. A server told how many peers to
// expect (ServerConfig.Expect, "netspec p2p serve --expect N") arranges
// them instead in d distribution trees (Trees, default 2), SplitStream
// style: chunk i travels down tree i mod d, the server feeds each tree's
// root its chunks in turn, and every peer pushes each chunk of its home
// tree to its children the moment it holds it. No request, no
// announcement, no duplicate.
//
// Geometry. The peers get ids 1..n in the order they offer ("XHEL 1
// tree" to the server); a peer that comes back keeps its id. Tree s is a
// d-ary heap: position q's children are positions d(q-1)+2 .. dq+1, and
// the positions are filled first with the ids in class s (id-1 = s mod
// d) in order, then with the other ids in order. The first
// floor((n-2)/d)+1 positions have children, so with two trees the peers
// that forward in tree 0 (odd ids) and in tree 1 (even ids) are
// different, every peer's upload carries one tree (1/d of the file, to
// d children: the whole file once), depth is log_d n, and the roots (ids
// 1..d) and upper levels are the first to join. A peer's home tree is
// the one it has children in (none for some leaves).
//
// Messages (extension version 1; only to and from nodes that said XHEL):
//
//	XHEL 1 tree\r\n
//	    a peer to the server: it can take a place in the trees.
//	TREE 3 1000 2\r\n
//	    the server to a peer, after its XHEL answer: it is id 3 of 1000,
//	    in 2 trees (1 <= id <= n, 1 <= d <= 16). Never answered.
//	PARENT 1 10.0.0.4 51000\r\n
//	    the server to a peer: its parent in tree 1 listens at that
//	    address (IPv4 or IPv6, then the port). Sent when both have
//	    joined, to whichever joined first. Never answered.
//	TSUB 3 1\r\n
//	    a peer to its parent in tree 1, on the connection it dialed with
//	    "XHEL 1 push": "I am id 3, your child in tree 1". It goes in the
//	    same write as that hello when the PARENT came first (the server
//	    placed the parent, so it speaks the extension: no round trip is
//	    spent finding out). The parent checks that it is, pushes every
//	    chunk of tree 1 it holds and the child has not announced, then
//	    each as it comes. Never answered (a stranger's TSUB is counted
//	    and ignored).
//	PUSH offset size\r\n<size bytes>
//	    as above; from the server, only to a root, and only chunks of its
//	    tree.
//	HASH n\r\n<n*32 bytes>
//	    as above, also sent unasked: by the server to a root when it
//	    starts feeding the trees (see below), or with TREE after that;
//	    and by a parent to each child whose home tree is its own (tree 0
//	    for a child with none), ahead of the chunks; so every peer gets
//	    one copy, from the peer whose chunks it must check before it can
//	    pass them on. A peer in the trees asks for the list (HREQ) only if
//	    that tree stalls.
//
// A parent serves its children in heap order: the first heads the larger
// subtree, so the deepest peers wait least behind a sibling's copy.
//
// The server starts feeding (the roots' hash lists, then their chunks)
// once the peers of the top three levels (1+d+d² ids, or all n) have
// their places, or feedWait (200 ms) after the first: a welcome is a few
// hundred bytes that lets a peer dial its parent, the feed 50 kB that
// every welcome written after it would wait behind on the uplink (N=20:
// level 2 started 55 ms later, the whole distribution with it).
//
// The server takes the roots in turn, one chunk each, so every tree gets
// its share of the uplink and no more (a burst into one tree would queue
// at every hop below it), and answers nothing else while the roots have
// chunks to be fed, apart from a root's hash list (a tree whose root has
// not come gives its turn to requests); peers in the trees send no DANY
// while all their trees bring chunks, and dial only treeNeighbours (2)
// neighbours besides their parents (the server lists as many in SHEL). Chunks still check against
// the hash list before they are stored, and a corrupt one bans its
// sender, as anywhere, with the one exception cut-through needs (below).
//
// Cut-through. A relay that paces by rate passes each body that comes
// from its parent in its home tree (the server, for a root) on to its
// children as the bytes arrive, not once the body is whole: the hash
// list to the children it owes a list, then each chunk of its tree to
// every child whose connection has nothing else waiting (a child still
// catching up gets whole chunks from its queue, as does every child while
// the relay's uplink is behind its pacing rate, so a slow parent still
// shows as a lagging tree). It writes the header (HASH n or PUSH offset
// size) as soon as the first body bytes are in and the body bytes as they
// come; anything else for that child waits behind the body. When the last
// byte is in, it checks the body (the chunk against its digest, the list
// against the root); one that fails is followed at once, on each child's
// connection, by
//
//	VOID 114688\r\n   VOID HASH\r\n
//	    "the chunk at that offset (the hash list) I just passed on failed
//	    its check: drop it". Never answered. A relay whose parent
//	    connection breaks mid-body, or sends nothing more of it for
//	    TreeStall, completes the body with zeros and voids it, so the
//	    child's stream stays framed and what waits behind it goes out.
//
// A child whose check fails on a body from a tree parent blames no one
// until that parent's next message: VOID for the body clears the parent
// (counted as voided; the chunk is pulled or comes again), anything else
// means the parent vouched for it, and it is banned as above. A relay
// blames its own parent the same way. A parent that voids more than
// maxVoids (8) bodies is dropped all the same: an honest relay voids one
// or two, when its own parent turns out malicious or vanishes. With 9000-byte segments at 10
// Mbit/s a hop then costs a segment (7 ms) and the link delay, not a
// chunk and a sibling's copy (N=100: 1.061x to 1.053x the bound; N=1000:
// 1.116x to 1.104x; PeerConfig.NoCut turns it off).
//
// Stalls. A tree that has brought nothing for TreeStall (1 s), whose
// parent connection is gone, or that has brought less than half as far
// into the file as the fastest tree (once that one is 128 chunks in: a
// parent with a slow uplink) is stalled: its chunks are pulled like any
// other until it brings one again (a chunk missing below the last one a
// parent pushed is pulled at once). A peer that joins after the server's
// n, declines (PeerConfig.NoTree), or speaks only the seed's protocol
// has no place and pulls; a place left empty stalls its subtree, which
// then pulls. A new TREE (the server restarted and numbered the peers
// again) replaces the old place.
//
// # Pacing
//
// A node answers DATA and HASH requests from a queue, after its pushes:
// a peer the requester with the fewest chunks first (the distribution
// ends when the last peer is done), the server the peer it last sent a
// chunk of its choice (DANY) longest ago first, so that the fresh chunks,
// each relayed by its receiver alone, are spread evenly over the peers'
// uplinks; and writes the next only when its uplink is nearly free: with a
// known UploadRate, when the bytes written minus what the rate has
// drained since are under Backlog; otherwise when fewer than Window
// answers are unacknowledged (a HAVE for the chunk from an extension
// node, sent at once on receipt to a node whose XHEL did not say "rate";
// the next request from a seed-style one, or the runner saying it has
// taken everything written to it (InStreamWritable), since a seed-style
// client that pipelines its requests has no next request to send; or
// AckTimeout). On the server, a requester whose answer timed out is
// stalled: served nothing more until it acknowledges something, so that
// one that never reads holds the window for one AckTimeout, not round
// after round (it slowed every other download 200-fold). Announcements
// (HAVE) ride on whatever else goes to a neighbour, and wait at most
// HaveDelay per neighbour for a segment of their own (twice that in
// a small swarm, where pushes tell neighbours most of it); a neighbour that
// has announced a chunk is not told of it. Without pacing, the
// answers pile up in the uplink's queue, every HAVE waits behind seconds
// of data, and a DANY's choice is stale by the time it leaves.
//
// # Stores
//
// A peer keeps its chunks in a Store, injected: MemStore (the file in
// memory, the seed's default), a file on disk (the command line), or
// LightStore, which holds no bytes at all but refers to a shared Content
// and admits only chunks equal to it, so that a simulation of a thousand
// peers holds one copy of the file. Machines read nothing else: the
// server's Content is given to it, and a trace rebuilds it from the
// generated file its configuration names.
//
// # Defences
//
// Every buffer is bounded (header lines, JSON bodies, a DATA body by the
// chunk size, a HASH body by the chunk count); malformed input is
// answered with UNKNOWN_COMMAND and counted, and input that breaks the
// framing ends the connection. A peer bans a neighbour that sends a
// corrupt chunk, a hash list that does not match the root, DATA it did
// not ask for, PUSH where it did not say "push", or an answer that does
// not fit its request. Requests queued per connection are bounded
// (MaxPending, 256 at peers, and at the server 256 or the chunk count
// and 16 if more, at most 65536, since a seed-style client may ask for every chunk at
// once: a connection that asks for more without reading its answers is
// sent UNKNOWN_COMMAND and closed, and reset if it sends more than 64
// KiB after that), and so are connections per node and neighbours per peer.
// Answers that are not paced (SHEL, PHEL, XHEL, CLRSP, CHECK, ERROR) go
// out at once, and a CLRSP can be thousands of times its CLREQ: a node
// counts their bytes per connection until its runner says everything
// written has been taken (InStreamWritable), and resets a connection
// that leaves more than MaxUnread (256 KiB, or four lists of every
// chunk) unread. The seed's protocol has no error id for "read your
// answers", and nothing is owed to a client that does not.
package p2p
