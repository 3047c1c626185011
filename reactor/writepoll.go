package reactor

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// writePoller tells the loop when a socket whose kernel send buffer was full
// can take more bytes. It is a separate epoll instance with one goroutine;
// sockets are in it only while they have buffered output (EPOLLONESHOT), so
// it costs nothing while writes go through directly.
type writePoller struct {
	r    *Reactor
	epfd int
	efd  int // eventfd that ends the goroutine
	done chan struct{}
	once sync.Once
}

func newWritePoller(r *Reactor) (*writePoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("reactor: write poller: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("reactor: write poller: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(epfd)
		unix.Close(efd)
		return nil, fmt.Errorf("reactor: write poller: %w", err)
	}
	wp := &writePoller{r: r, epfd: epfd, efd: efd, done: make(chan struct{})}
	go wp.run()
	return wp, nil
}

func (wp *writePoller) add(fd int) error {
	return unix.EpollCtl(wp.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(fd)})
}

func (wp *writePoller) rearm(fd int) error {
	return unix.EpollCtl(wp.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(fd)})
}

func (wp *writePoller) remove(fd int) {
	_ = unix.EpollCtl(wp.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

func (wp *writePoller) run() {
	defer close(wp.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(wp.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// Buffered writes would never finish: the reactor is broken.
			wp.r.Abort(fmt.Errorf("reactor: write poller: %w", err))
			return
		}
		fds := make([]int, 0, n)
		for _, ev := range events[:n] {
			if int(ev.Fd) == wp.efd {
				return
			}
			fds = append(fds, int(ev.Fd))
		}
		// A stale descriptor number (closed, maybe reused) only causes a
		// harmless flush attempt of whatever owns it now.
		if wp.r.Submit(func() {
			for _, fd := range fds {
				if c := wp.r.conns[fd]; c != nil {
					c.flush()
				}
			}
		}) != nil {
			return
		}
	}
}

// close stops the goroutine and frees the poller; later calls do nothing.
func (wp *writePoller) close() {
	wp.once.Do(func() {
		var one = [8]byte{1}
		_, _ = unix.Write(wp.efd, one[:])
		<-wp.done
		unix.Close(wp.epfd)
		unix.Close(wp.efd)
	})
}
