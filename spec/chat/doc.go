// Package chat is seed 003's UDP group chat as a pure state machine: a
// server keeps a table of members, any datagram from a member keeps it
// alive, "^hb^" is a pure heartbeat, "quit" leaves, every other line is
// broadcast to all members, and a member silent for the interval is
// removed. It keeps the seed's plain-text wire so `nc -u HOST PORT` is a
// usable client, and adds what users of a chat expect: nicks, join and
// leave notices, /who, /me, validated UTF-8, size and rate limits, a
// member limit, and (for clients that speak the sequenced dialect, like
// `netspec chat join`) messages shown at most once and in order over a
// network that loses, duplicates and reorders datagrams.
//
// # Wire format: client to server
//
// Every datagram goes to the server's UDP port. It is
//
//	datagram = [ header ] line *( LF line ) [ LF ]
//	header   = "^" session "." seq "^"
//	session  = 16 lowercase hex digits, not all zero   ; the client's session
//	seq      = "0" / 1-10 digits without a leading zero, <= 4294967295
//
// for example "^00035d013b37e000.7^hello" (session 0x35d013b37e000, its
// 7th numbered datagram, the line "hello"): at most 29 bytes of header.
// A datagram that starts with a header of this form whose session is all
// zero, or with a server's header (below), is dropped and counted as
// malformed: the first is a broken client, the second another server's
// output, which answering could set two servers talking for ever. A
// datagram that starts with neither form has no header: all of it is
// lines (so an nc user who types "^_^" sends a smiley). A line is
// trimmed of a CR before its LF and of spaces and tabs at both ends; empty
// lines are ignored. So `nc -u`, which sends what it reads, works whether
// it sends one line per datagram (typing) or several (a pipe): every line
// is one message, and its trailing newline is not part of it. The lines:
//
//	^hb^          heartbeat: keeps the sender a member; no reply
//	quit, /quit   leave; the server answers "*** bye NICK"
//	/nick NAME    take a nick: 1-16 ASCII letters, digits, "_" or "-",
//	              starting with a letter, unique regardless of case
//	/nick         show your nick
//	/who          list the members (sorted, at most ~900 bytes)
//	/me ACTION    broadcast "* NICK ACTION"
//	/help         list the commands a member types (not /ok)
//	/ok TOKEN     show the server this address receives (see Validation)
//	/OTHER        "*** error: unknown command /OTHER; /help lists commands"
//	              (the name left out if over 24 bytes or not plain text)
//	//TEXT        the message "/TEXT"
//	TEXT          broadcast "[NICK] TEXT"
//
// A message (TEXT or ACTION) must be valid UTF-8, at most MaxLine bytes
// (default 512), with no control characters but TAB (no C0, DEL or C1:
// they would let one member rewrite another's terminal). A datagram over
// MaxDatagram bytes (default 2048) is dropped whole. Refusals are answered
// with a "*** error: ..." notice to the sender and counted.
//
// # Wire format: server to client
//
// The server sends from its port, to the address a client's datagrams
// came from, one datagram per event, each line ending in LF:
//
//	[NICK] TEXT                 a member's message (the sender gets it too:
//	                            it shows the order everybody sees)
//	* NICK ACTION               a /me
//	*** NICK joined             to the other members
//	*** welcome NICK: N member(s) online; type /ok TOKEN to hear the chat;
//	    silence for 10s drops you (send ^hb^ to stay); /help lists commands
//	                            (one line, to the joiner; NICK is followed
//	                            by "(nick X is taken)" or "(not a valid
//	                            nick: ...)" when its first line asked for
//	                            a nick it cannot have, and it is a guest)
//	*** type /ok TOKEN to hear the chat   the reminder, to a plain member
//	*** ok NICK: you hear the chat now    the answer to the right token
//	*** NICK left               quit
//	*** NICK timed out          expired
//	*** NICK left (a new client took over the address)
//	*** OLD is now known as NEW
//	*** bye NICK                to a member that quit
//	*** N member(s): a, b, ...  the answer to /who ("and K more" if long)
//	*** error: ...              a refusal, to the sender only
//	*** rate limit: ...         the first line dropped by the rate limit
//	*** chat is full (N members); try again later
//	*** chat is full            the same, when the above would not fit
//	*** server shutting down
//
// Datagrams to a member that speaks the sequenced dialect start with the
// server's header, which echoes the client's session:
//
//	header     = "^" session "." membership "." seq "^"
//	membership = 16 lowercase hex digits                ; see below
//
// seq counts the datagrams sent to the membership from 1. A reply to a
// non-member that sent a session (the bye to a resent quit, "chat is
// full") has membership and seq 0. A client drops datagrams whose
// session is not its own: a process that reuses a dead one's port never
// shows what was meant for it. Such members also get control lines, which
// plain clients never see (a line is a control line iff it starts with
// "^"; no human line does), always behind the header: a client acts on
// no control line of a datagram without one (a plain server's, or
// forged) and drops it:
//
//	^welcome NICK INTERVAL_MS TOKEN^  after the welcome: your nick, the
//	                            interval, the token to send back
//	^token TOKEN^               the reminder, to a sequenced member
//	^ok^                        after "*** ok": the token was right
//	^nick NICK^                 your /nick took effect
//	^bye^                       after the bye
//	^cookie COOKIE^             alone, to a stranger the join limit
//	                            turned away (see Joining under a flood)
//
// # Validation
//
// Any datagram makes its source a member, as in the seed, but a source
// address can be forged: a chat that sent every member the chat would
// let one forged byte per member draw every line, join notice and
// timeout to a victim (members squared, ×7,000 measured before this
// rule). So a member's address counts as validated only once the member
// sends back the TOKEN of its welcome, "/ok TOKEN" (8 hex digits of an
// HMAC, keyed by ServerConfig.Secret, of the member's address, session
// and membership: a forger that does not receive at the address cannot
// know it). Until then the server sends the member its welcome, its
// bye, and replies to its own datagrams only as far as they hold no more
// bytes than the datagram answered, one datagram at most; a reminder of the token (the welcome
// may have been lost) answers its datagrams at most every half Interval,
// within the strangers' budget (JoinRate, below); everything else
// (broadcasts, notices, its own line back) is withheld and counted. Its lines are still broadcast to the validated
// members, and it is a member in every other way (expiry, nicks, the
// member limit). Sequenced clients send the token back at once and with
// every heartbeat until "^ok^", which a validated member's token, sent
// again, draws again (the first was lost); an nc user types it, once.
//
// A non-member's source address is not validated either, so the server
// never sends one more bytes than the datagram it answers (a reply that
// would be larger is dropped and counted), and answers non-members
// within the budget it admits them by (JoinRate, below). So forged
// datagrams draw welcomes and reminders (at most some 240 bytes each),
// and nothing else beyond their own size, and those share one budget of
// JoinRate a second (bursts of JoinBurst): at the defaults the server
// reflects at most about 5 KB/s in all, whoever sends how much
// (measured: 147 bytes back per forged 1-byte join, where it was 7,000
// times the input before validation). An nc user who is not a
// member gets "*** chat is full" for a line of 17 bytes or more (its LF
// included) and the long form for one of about 50, and no bye to a
// quit. The sequenced client pads what it sends as a non-member (before
// its first welcome, on quit, and whenever the server has been silent
// for a whole interval, as after a partition that expired it) to 96
// bytes (StrangerPad) with spaces
// after the last LF, an empty line the server ignores, so it gets both
// answers. A non-member's datagram whose first line starts with "*** ",
// as the server's notices do, is dropped unanswered and joins no one: it
// is most likely another chat server's output.
//
// # Membership and expiry
//
// Everything the server sends a member leaves from the server address
// the member last sent to (Input.Local, when the server listens on an
// unspecified address), so nc -u connected to any of a host's addresses
// hears the chat. Any datagram from a member refreshes it, whatever it
// holds, even one
// over MaxDatagram (which is refused with a notice: the member is
// evidently there), unless it is dropped as not the member's: one with a
// malformed or server's header, or of an older or closed session. A
// non-member joins with its first datagram of at most MaxDatagram bytes,
// with a well-formed header if any, that has a non-empty line, does not
// start with "*** " and is not a quit, if there are fewer than
// MaxMembers members (else it is told the chat is full, if that fits)
// and the join limit allows (or its cookie does, below); a first line "/nick NAME" joins it under
// NAME, otherwise it is guestN. A line that is then
// refused (bad UTF-8, say) still made a member, which is told why: an nc
// user with a Latin-1 terminal learns what is wrong instead of hearing
// nothing. Datagrams from source port 0 are dropped (no reply is
// possible).
//
// A member silent for Interval (default 10s) or longer is removed: when
// a step's time is heard+Interval or later the server expires it before
// doing anything else, whatever the input (a datagram, either timer,
// stop), so an expired member is sent nothing, not even in the step in
// which it expires (the seed's server sent it the message that made it
// notice). A timer set for the earliest deadline makes expiry happen on
// time even when nobody talks.
//
// States of a client address at the server:
//
//	NONE    --valid datagram-->          MEMBER, not validated (join
//	                                     notice, welcome with the token)
//	NONE    --quit-->                    NONE   (bye, if it fits)
//	NONE    --sequenced, join limit reached--> NONE (cookie, if it fits)
//	NONE    --sequenced with a good cookie--> MEMBER, past the limit
//	MEMBER  --"/ok TOKEN", not validated--> MEMBER, validated ("*** ok";
//	                                     from now on it hears the chat)
//	MEMBER  --datagram-->                MEMBER (refreshed; reminded of
//	                                     the token if not validated)
//	MEMBER  --quit-->                    NONE   (bye; notice "left")
//	MEMBER  --Interval of silence-->     NONE   (notice "timed out")
//	MEMBER  --datagram of a newer session--> MEMBER (a new membership:
//	         notice "left (...took over...)", then "joined")
//
// # Duplication, reordering and the sequenced dialect
//
// The network may duplicate a datagram. A plain client (nc) cannot number
// its lines, and the server cannot tell a network duplicate from a user
// who typed the same line twice: suppressing repeats by content and source
// within a time window would silently lose the second of two identical
// lines, which is losing data. So plain datagrams are never deduplicated:
// each plain datagram the network delivers is a send, and the at-most-once
// guarantee for plain clients is exactly "each line is broadcast once per
// time the network delivered it".
//
// A sequenced client (netspec chat join) numbers its datagrams: its
// session is named by the time it started, in microseconds, so a
// restarted client's session is newer; seq is 1, 2, ... for each datagram that
// carries lines, and 0 for heartbeats, which need neither deduplication
// nor order. The server keeps, per member, a window: a datagram numbered
// next is processed at once; one further ahead (by less than 32) waits,
// up to Hold (default 100ms), for the gap before it to fill, and then the
// gap is declared lost; one 32 or more ahead slides the window (what
// waits below it goes out, the gaps declared lost); one at or below a
// number already passed, or already waiting, is a duplicate and is
// dropped. At most 32 datagrams or 16 KiB wait per member; beyond that
// everything waiting goes out. The numbers processed
// only ever increase (after 4294967295 every number is stale), so each send is broadcast at most once and a
// sender's lines are broadcast in the order it sent them, for as long as
// the server lives: a restarted server remembers nothing of its
// predecessor, so a datagram the network duplicated and held back across
// the restart can be broadcast once by each. A membership
// that begins with a number above 1 (after a heartbeat or a restart)
// waits Hold for lower numbers before it starts; but when a sequenced
// member expires the server remembers, for FloorKeep (8) Intervals, the
// number its window had reached, and a new membership of the same
// session (and address) starts there: a straggler the old membership
// processed, delayed past the expiry, is stale, not broadcast again
// (with the base unknown, jitter longer than the interval broadcast a
// line twice on 5 of 60 seeds of 'sim chat --interval 10ms').
//
// A datagram that contains a quit is processed at once, after whatever
// waits in the window: the session is then closed for Interval (a
// tombstone, at most MaxMembers of them), so a late duplicate or
// straggler of it neither rejoins nor is broadcast, and a resent quit is
// answered with another bye. A datagram of an older session than the
// member's is dropped; one of a newer session (or a sequenced one at an
// address whose member is plain) starts a new membership. The sequenced
// client therefore waits Hold after its last message before it sends
// quit, so the network does not reorder a message behind it.
//
// The same window runs in the client, on the server's datagrams. Each
// membership has an id that grows with the server's clock (microseconds,
// one more than the last at least), so across expiry, rejoining and
// server restarts a client switches to a newer membership and drops the
// late datagrams of an older one. A sequenced client therefore shows each
// numbered datagram the server sent it at most once, in the order the
// server sent them: every member sees a subsequence of the server's
// broadcasts, in the server's order. Unnumbered replies (seq 0) are
// shown as they arrive; a "line" event's Line.Seq says which it was.
//
// Assumptions: a datagram is not delayed by more than Interval (by
// FloorKeep Intervals, for a member that expires and rejoins), and
// clocks do not step back across restarts (else a restarted server's
// membership ids, or a restarted client's session, look old until the
// old one expires).
//
// # Rate limit
//
// Each member may send Burst lines (default 10) at once and Rate lines
// per second (default 5) on average (GCRA); heartbeats and quit are not
// counted. The first line refused in an episode gets a "*** rate limit"
// notice; the rest are dropped quietly (and counted) until a line is
// accepted again, so the limit cannot be used to make the server flood.
//
// Strangers share one budget (GCRA, JoinRate a second, default 20, in
// bursts of JoinBurst, default 50): each join and each answer to a
// non-member takes one unit, and beyond it strangers are dropped without
// a reply, so a flood of forged sources can make the server neither
// announce nor answer without limit.
//
// # Joining under a flood
//
// That budget is also all a flood needs to keep everyone out: 300
// one-byte datagrams a second from fresh ports (600 B/s) took it all, and
// no new client could join. So a sequenced stranger the budget turns
// away is answered, if its datagram is at least as large (the client
// pads to StrangerPad), with a cookie behind the server's header
// (membership and seq 0):
//
//	^cookie COOKIE^   COOKIE: 16 lowercase hex digits, the first 8 bytes
//	                  of HMAC-SHA256(Secret, "chat cookie" | source
//	                  address (16 bytes, IPv4 mapped) | port (2) |
//	                  session (8) | now / Interval (8)), big-endian
//
// The server keeps nothing and spends no budget on it, and the answer is
// never larger than the datagram: a forged source draws one datagram no
// larger than its own, to an address that did not ask (a reflection, as
// echo's, not an amplification). The client sends its next heartbeat at
// once, with "^cookie COOKIE^" as its first line (and with every
// heartbeat until a welcome). A non-member's sequenced datagram whose
// first line is a cookie the server would give that address and session
// now, or gave it in the Interval before, joins past the budget: only a
// client that receives at its address has one. Such a join is a join
// like any other (welcome, token, member limit); the client asks for its
// nick again, as after any rejoin, and what it sent before the welcome
// was dropped. A wrong cookie counts (bad_cookies) and the datagram is
// taken as if it had none. A member's cookie lines are ignored, and
// from a datagram without a header the line is a message: nc users,
// who cannot answer a cookie, still meet the budget.
//
// # Client
//
// The client binds an ephemeral port, sends "/nick NAME" (seq 1) or a
// heartbeat, and sends each typed line as one sequenced datagram (padded
// until its first welcome, and quit, as said above). Lines typed before
// its membership is validated ("^ok^") it holds, and sends on the "^ok^",
// so that a line typed at once or piped in comes back to its sender too:
// for a third of the interval at most, and up to MaxHeld (8, under the
// server's rate-limit burst) lines; then they, and what follows until
// the next welcome, go out as typed. Quit (or EOF) waits for the held
// lines to go; stop sends them and quit at once. It
// heartbeats every third of the interval the welcome announces (of its
// configured Interval until then), moved on by every datagram it sends,
// so a talking client sends no heartbeats. It sends a welcome's token
// back at once, and in place of heartbeats until "^ok^" (again for a
// "^token^"). A "^cookie^" (the join limit turned it away) it sends
// back at once, in a heartbeat, and with every heartbeat until a
// welcome. It takes a welcome's INTERVAL_MS under MinInterval (10ms,
// the least a server takes for Interval) as MinInterval. If a welcome
// names it other than the nick it holds (it was expired, or the server
// restarted), it
// asks for its nick again, once per membership. On quit or EOF it sends
// quit after Hold (on stop at once) up to QuitTries times, QuitTimeout
// apart, and
// exits at the numbered bye, or after the last try. An unnumbered bye
// (the answer to a duplicated or resent quit) may overtake the
// membership's last datagrams, so the client then lingers for two Holds,
// showing what still arrives, before it exits. Lines are reported as
// "line" events (Value: Line), the welcome as "joined", the bye as
// "left".
//
// Client states:
//
//	STARTING --bound-->          ACTIVE  (sends /nick NAME or ^hb^)
//	ACTIVE   --quit, EOF, stop--> LEAVING (quit after Hold, resent)
//	LEAVING  --numbered bye-->   exit
//	LEAVING  --unnumbered bye--> CLOSING --2 Holds--> exit
//	LEAVING  --QuitTries without a bye--> exit
//
// # Timers and state
//
// The machine reads no clock and no randomness: session and membership
// ids come from the time passed in with InBound and with the datagram
// that makes a member. Members are kept in a map by address, in a slice
// in join order (broadcast order), and in a list by time last heard, so a
// heartbeat costs a map lookup and a list move and emits nothing.
package chat
