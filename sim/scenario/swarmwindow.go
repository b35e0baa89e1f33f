package scenario

import "time"

// The download checkers' work is over in seconds; drawn over the default
// 5 to 30 s window, most of their partitions and crashes came after it
// (a P2P run met one in 18% of seeds, a file run in 28%), and the network
// healed after the work was done in 96% and 73% of runs. Their windows
// are of the order of the work instead, so outages there last at most
// 3 s; longer ones are left to the checkers whose work spans the default
// window (cs, echo, chat, stream).

// FaultWindow implements Windowed: the checked P2P run (256 kB to four
// peers) takes 0.5 s on a healthy network and took a median of 1.4 s
// under the default window's faults, so its faults are drawn over 0.5 to
// 3 s.
func (w *Swarm) FaultWindow(seed uint64) time.Duration {
	return windowBetween(seed, 0x9292, 500*time.Millisecond, 3*time.Second)
}

// FaultWindow implements Windowed: the checked file run (200 kB to three
// clients) takes 0.5 s on a healthy network and took a median of 2.8 s
// under the default window's faults, so its faults are drawn over 0.5 to
// 3 s.
func (f *File) FaultWindow(seed uint64) time.Duration {
	return windowBetween(seed, 0xf11e, 500*time.Millisecond, 3*time.Second)
}

// FaultWindow implements Windowed: the checked TFTP run (100 kB to three
// clients, one uploading it back) is over in well under a second on a
// healthy network, so its faults too are drawn over 0.5 to 3 s.
func (t *TFTP) FaultWindow(seed uint64) time.Duration {
	return windowBetween(seed, 0x7f7b, 500*time.Millisecond, 3*time.Second)
}
