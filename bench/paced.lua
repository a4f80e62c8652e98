-- post.lua with a 1 ms pause before each request on each connection: a paced load at about
-- connections × 1000 / (1 + latency in ms) requests/s, for latency at a given fraction of the
-- maximum throughput (wrk 4 has no fixed-rate mode; bench/run.sh picks the connection count).
dofile("bench/post.lua")

function delay()
  return 1
end
