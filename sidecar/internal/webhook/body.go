package webhook

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// errBudget means a body did not fit in the in-flight budget.
var errBudget = errors.New("in-flight body budget spent")

// firstChunk is the first buffer for a body of unknown length (chunked);
// it doubles from there.
const firstChunk = 4 << 10

// budget is a byte count that request bodies reserve before they allocate
// and release when the request is done. It never blocks: a reservation
// that does not fit fails.
type budget struct {
	max  int64 // set once by New
	used atomic.Int64
}

// tryAcquire reserves n bytes, or reports false and reserves nothing.
func (b *budget) tryAcquire(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// release returns n reserved bytes.
func (b *budget) release(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}

// readBody reads the whole body, up to s.maxBody bytes, and returns the
// bytes it reserved from the budget, which the caller releases once done
// with the body, also on error. Every buffer is reserved before it is
// allocated (a claimed Content-Length up front; a chunked body as its
// buffer doubles), so unauthenticated bodies hold at most the budget. It
// returns errBudget when a reservation fails, and an *http.MaxBytesError
// beyond s.maxBody, after which the server closes the connection.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, held int64, err error) {
	rd := http.MaxBytesReader(w, r.Body, s.maxBody)
	size := min(int64(firstChunk), s.maxBody+1)
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1 // room to see EOF without growing
	}
	if !s.budget.tryAcquire(size) {
		return nil, 0, errBudget
	}
	held = size
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			// Only for a body of unknown or wrong length: grow, within the
			// limit's reach (the reader fails beyond maxBody).
			grow := min(int64(cap(b)), s.maxBody+1-int64(cap(b)))
			grow = max(grow, 1)
			if !s.budget.tryAcquire(grow) {
				return nil, held, errBudget
			}
			held += grow
			nb := make([]byte, len(b), int64(cap(b))+grow)
			copy(nb, b)
			b = nb
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, held, nil
		}
		if err != nil {
			return nil, held, err
		}
	}
}
