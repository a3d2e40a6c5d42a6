set terminal pngcairo size 900,600 noenhanced
set output 'docs/results/2026-11-30-bench-cpu/paper.png'
set datafile separator ','
set logscale x 2
set xlabel 'sequence length n (tokens)'
set ylabel 'GQA latency / GQE latency'
set title 'GQE prefill speedup over GQA (solid: measured; dashed: FLOP limit)'
set key outside right
set grid
set yrange [0:*]
set offsets 0, 0, 0.1, 0
plot 'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'core') ? $7 : 1/0) with linespoints lw 2 lc 1 title 'paper core', \
     'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'core') ? $8 : 1/0) with lines dt 2 lc 1 notitle, \
     'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'layer') ? $7 : 1/0) with linespoints lw 2 lc 2 title 'paper layer', \
     'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'layer') ? $8 : 1/0) with lines dt 2 lc 2 notitle, \
     'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'block') ? $7 : 1/0) with linespoints lw 2 lc 3 title 'paper block', \
     'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'block') ? $8 : 1/0) with lines dt 2 lc 3 notitle, \
     'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'model') ? $7 : 1/0) with linespoints lw 2 lc 4 title 'paper model', \
     'docs/results/2026-11-30-bench-cpu/paper.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'model') ? $8 : 1/0) with lines dt 2 lc 4 notitle
