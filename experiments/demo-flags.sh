# The demo's training settings, as `amcl-train pretrain` flags: experiments/demo-weights.sh trains
# the shipped weights with them and experiments/demo-screen.sh screens one change at a time. Sourced
# by both, not run. EPOCHS, GRAD_CLIP, WIDTH and VIEW_SIZE (environment) change those settings for
# the candidates of docs/RESULTS.md, section 4 ("Toward 65 %").
# shellcheck disable=SC2034  # demo_flags is read by the scripts that source this file
declare -A demo_flags=(
  [--method]=amcl-simclr [--amcl-form]=centred [--tau-max]=0.4
  [--data]=folder:target/data/cifar10 [--train-size]=46000 [--test-size]=10000
  [--width]="${WIDTH:-16}" [--epochs]="${EPOCHS:-150}" [--batch-size]=256 [--optimizer]=sgd
  [--lr]=0.06 [--weight-decay]=5e-4 [--warmup-epochs]=5 [--grad-clip]="${GRAD_CLIP:-1}"
  [--eval-every]=10 [--seed]=0
  # Training views resampled to 24 pixels, nearer the test images' object size than 32-pixel
  # views of small crops (RESULTS, "Smaller training views"); VIEW_SIZE=32 trains at the images' side.
  [--view-size]="${VIEW_SIZE:-24}"
)

# demo_args_with [FLAG VALUE]...: sets the array `demo_args` to the settings as arguments, each FLAG
# given replacing the setting of that name (or adding it).
demo_args_with() {
  local -A flags=()
  local flag
  for flag in "${!demo_flags[@]}"; do flags[$flag]="${demo_flags[$flag]}"; done
  while [ $# -ge 2 ]; do flags[$1]="$2"; shift 2; done
  demo_args=()
  for flag in "${!flags[@]}"; do demo_args+=("$flag" "${flags[$flag]}"); done
}
