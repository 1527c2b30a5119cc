#!/bin/sh
# Install DiffEdit from the unpacked tarball, for this user (default) or system-wide (--system, as root).
#   ./install.sh            -> ~/.local/opt/DiffEdit, ~/.local/bin/DiffEdit, menu entry, icon, .ora type
#   sudo ./install.sh --system   -> /opt/DiffEdit, /usr/local/bin/DiffEdit, /usr/share/...
#   ./install.sh --uninstall [--system]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ID=org.diffedit.DiffEdit
MODE=user
ACTION=install
for arg in "$@"; do
    case "$arg" in
        --system) MODE=system ;;
        --uninstall) ACTION=uninstall ;;
        -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done
if [ "$MODE" = system ]; then
    PREFIX=/opt/DiffEdit; BIN=/usr/local/bin; SHARE=/usr/share
else
    PREFIX="$HOME/.local/opt/DiffEdit"; BIN="$HOME/.local/bin"
    SHARE="${XDG_DATA_HOME:-$HOME/.local/share}"
fi
refresh() {
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$SHARE/applications" || true
    command -v update-mime-database >/dev/null 2>&1 && update-mime-database "$SHARE/mime" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$SHARE/icons/hicolor" || true
}
if [ "$ACTION" = uninstall ]; then
    rm -rf "$PREFIX"
    rm -f "$BIN/DiffEdit" "$SHARE/applications/$ID.desktop" "$SHARE/metainfo/$ID.metainfo.xml" \
          "$SHARE/mime/packages/$ID.xml" "$SHARE/icons/hicolor/scalable/apps/$ID.svg" \
          "$SHARE/icons/hicolor/256x256/apps/$ID.png"
    refresh
    echo "DiffEdit removed (your settings and plugins in ~/.config/diffedit are kept)"
    exit 0
fi
mkdir -p "$PREFIX" "$BIN" "$SHARE/applications" "$SHARE/metainfo" "$SHARE/mime/packages" \
         "$SHARE/icons/hicolor/scalable/apps" "$SHARE/icons/hicolor/256x256/apps"
rm -rf "$PREFIX"
cp -a "$HERE/DiffEdit" "$PREFIX"
ln -sf "$PREFIX/DiffEdit" "$BIN/DiffEdit"
sed "s|^Exec=DiffEdit|Exec=$PREFIX/DiffEdit|; s|^TryExec=DiffEdit|TryExec=$PREFIX/DiffEdit|" \
    "$HERE/$ID.desktop" > "$SHARE/applications/$ID.desktop"
cp "$HERE/$ID.metainfo.xml" "$SHARE/metainfo/"
cp "$HERE/$ID.mime.xml" "$SHARE/mime/packages/$ID.xml"
cp "$HERE/diffedit.svg" "$SHARE/icons/hicolor/scalable/apps/$ID.svg"
cp "$HERE/diffedit.png" "$SHARE/icons/hicolor/256x256/apps/$ID.png"
refresh
echo "DiffEdit installed in $PREFIX; run 'DiffEdit' (in $BIN) or pick it from the applications menu."
echo "Check it with: DiffEdit --selftest"
