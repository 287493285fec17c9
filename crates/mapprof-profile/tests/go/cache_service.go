// A cache service in miniature: writers rebuild a map under a mutex (growing it from empty,
// with a deferred Unlock), readers take the same mutex, and workers wait for jobs on channels
// and in select. Writes allocs, mutex, block and cpu profiles to the directory in os.Args[1].
// Lines marked "allocates" are the ones that allocate in (*Cache).Update.
package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
)

type Cache struct {
	mu    sync.Mutex
	items map[string][]byte
}

//go:noinline
func (c *Cache) Update(prefix string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string][]byte) // allocates
	for i := 0; i < n; i++ {
		m[prefix+strconv.Itoa(i)] = make([]byte, 32) // allocates
	}
	c.items = m
}

//go:noinline
func (c *Cache) Get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items[key])
}

//go:noinline
func waitForJobs(jobs <-chan int, done <-chan struct{}, results chan<- int) {
	for {
		select {
		case j := <-jobs:
			results <- j * 2
		case <-done:
			return
		}
	}
}

//go:noinline
func collect(results <-chan int, n int) int {
	sum := 0
	for i := 0; i < n; i++ {
		sum += <-results
	}
	return sum
}

func main() {
	dir := os.Args[1]
	runtime.MemProfileRate = 4096
	runtime.SetMutexProfileFraction(1)
	runtime.SetBlockProfileRate(1)
	cpu, err := os.Create(filepath.Join(dir, "go-cpu.pb.gz"))
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		panic(err)
	}
	c := &Cache{items: map[string][]byte{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.Get("k" + strconv.Itoa(i%1000))
			}
		}(r)
	}
	jobs, done, results := make(chan int), make(chan struct{}), make(chan int)
	for w := 0; w < 2; w++ {
		go waitForJobs(jobs, done, results)
	}
	go func() {
		for i := 0; i < 200; i++ {
			time.Sleep(3 * time.Millisecond)
			jobs <- i
		}
	}()
	sum := 0
	go func() { sum = collect(results, 200) }()
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		c.Update("key", 5000)
	}
	close(stop)
	close(done)
	wg.Wait()
	pprof.StopCPUProfile()
	cpu.Close()
	for _, name := range []string{"allocs", "mutex", "block"} {
		f, err := os.Create(filepath.Join(dir, "go-"+name+".pb.gz"))
		if err != nil {
			panic(err)
		}
		if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
			panic(err)
		}
		f.Close()
	}
	_ = sum
}
