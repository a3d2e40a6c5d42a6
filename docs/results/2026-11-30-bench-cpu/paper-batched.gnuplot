set terminal pngcairo size 900,600 noenhanced
set output 'docs/results/2026-11-30-bench-cpu/paper-batched.png'
set datafile separator ','
set logscale x 2
set xlabel 'sequence length n (tokens)'
set ylabel 'GQA latency / GQE latency'
set title 'GQE prefill speedup over GQA (solid: measured; dashed: FLOP limit)'
set key outside right
set grid
set yrange [0:*]
set offsets 0, 0, 0.1, 0
plot 'docs/results/2026-11-30-bench-cpu/paper-batched.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'layer-b4') ? $7 : 1/0) with linespoints lw 2 lc 1 title 'paper layer-b4', \
     'docs/results/2026-11-30-bench-cpu/paper-batched.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'layer-b4') ? $8 : 1/0) with lines dt 2 lc 1 notitle, \
     'docs/results/2026-11-30-bench-cpu/paper-batched.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'layer-b16') ? $7 : 1/0) with linespoints lw 2 lc 2 title 'paper layer-b16', \
     'docs/results/2026-11-30-bench-cpu/paper-batched.csv' skip 1 using 4:((strcol(1) eq 'prefill' && strcol(2) eq 'paper' && strcol(3) eq 'layer-b16') ? $8 : 1/0) with lines dt 2 lc 2 notitle
