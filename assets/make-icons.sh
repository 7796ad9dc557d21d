#!/usr/bin/env bash
# Draws Tandem's icons with ImageMagick (run by hand when they change; the PNGs are
# committed). The tray icons share one shape, two arrows chasing each other round a disc,
# and differ in colour and mark so that the state reads at 16 px and in greyscale too:
#   idle (teal, arrows)  syncing (blue, arrows + dot)  paused (grey, two bars)
#   conflicts (amber, "!")  error (red, "x").
# Every PNG is 8-bit RGBA, as Tauri's include_image! needs.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p tray icons
disc() { # colour -> a 256 px disc with a white ring of two arrows
    convert -size 256x256 xc:none -fill "$1" -draw "circle 128,128 128,8" \
        -fill none -stroke white -strokewidth 22 \
        -draw "arc 58,58 198,198 200,340" -draw "arc 58,58 198,198 20,160" \
        -stroke none -fill white \
        -draw "polygon 206,92 230,140 176,136" -draw "polygon 50,164 26,116 80,120" "$2"
}
arrows=/tmp/tandem-icon-arrows.png
disc '#2a9d8f' tray/idle.png
disc '#1d6fd8' "$arrows"
convert "$arrows" -fill white -draw "circle 128,128 128,100" tray/syncing.png
convert -size 256x256 xc:none -fill '#6b7280' -draw "circle 128,128 128,8" \
    -fill white -draw "roundrectangle 84,68 116,188 8,8" -draw "roundrectangle 140,68 172,188 8,8" tray/paused.png
convert -size 256x256 xc:none -fill '#d97706' -draw "circle 128,128 128,8" \
    -fill white -draw "roundrectangle 112,48 144,150 10,10" -draw "circle 128,190 128,170" tray/conflicts.png
convert -size 256x256 xc:none -fill '#c0262d' -draw "circle 128,128 128,8" \
    -stroke white -strokewidth 34 -draw "line 82,82 174,174" -draw "line 174,82 82,174" tray/error.png
cp tray/idle.png /tmp/tandem-icon-app.png
for f in tray/*.png; do convert "$f" -resize 64x64 -depth 8 "PNG32:$f"; done
for s in 32 128 256; do convert /tmp/tandem-icon-app.png -resize ${s}x${s} -depth 8 "PNG32:icons/${s}x${s}.png"; done
convert /tmp/tandem-icon-app.png -resize 512x512 -depth 8 "PNG32:icons/icon.png"
convert icons/256x256.png -define icon:auto-resize=256,64,48,32,16 icons/icon.ico
rm -f "$arrows" /tmp/tandem-icon-app.png
