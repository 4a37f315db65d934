# Sourced by bench/run.sh's hyperfine --prepare: put the benchmark file back where it started.
restore() {
  if [ -e "bench/out/watch_dir/processed/$1" ]; then mv "bench/out/watch_dir/processed/$1" "bench/data/$1"; fi
  rm -rf bench/out/watch_dir
}
