package apiserver

import (
	"sync"

	"k8s.io/apimachinery/pkg/watch"
)

// filterWatch passes a watch's events through f, as watch.Filter does,
// but stops once Stop is called. watch.Filter's goroutine sends each
// event without looking for a stop: when its reader goes away (a client
// that disconnects, an informer that stops), it blocks for ever on an
// event the upstream had buffered, holding the upstream watch with it.
func filterWatch(in watch.Interface, f func(watch.Event) (watch.Event, bool)) watch.Interface {
	w := &filteredWatch{in: in, out: make(chan watch.Event), f: f, stop: make(chan struct{})}
	go w.loop()
	return w
}

type filteredWatch struct {
	in   watch.Interface
	out  chan watch.Event
	f    func(watch.Event) (watch.Event, bool)
	stop chan struct{}
	once sync.Once
}

func (w *filteredWatch) ResultChan() <-chan watch.Event { return w.out }

// Stop stops the upstream watch and this one's sending.
func (w *filteredWatch) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.in.Stop()
	})
}

func (w *filteredWatch) loop() {
	defer close(w.out)
	for {
		var e watch.Event
		var ok bool
		select {
		case e, ok = <-w.in.ResultChan():
			if !ok {
				return
			}
		case <-w.stop:
			return
		}
		e, keep := w.f(e)
		if !keep {
			continue
		}
		select {
		case w.out <- e:
		case <-w.stop:
			return
		}
	}
}
