#!/bin/sh
# Sign, package and notarize DiffEdit.app on macOS. Run after `python3 packaging/build.py` has made
# packaging/dist/DiffEdit.app (the spec's BUNDLE step). Credentials come from the environment:
#   MACOS_SIGN_IDENTITY   "Developer ID Application: Name (TEAMID)"   (unset: ad-hoc signature, no notarization)
#   APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD   an app-specific password for notarytool
#   (or NOTARY_PROFILE: a keychain profile made once with `xcrun notarytool store-credentials`)
# Output: packaging/dist/DiffEdit-VERSION-macos-ARCH.dmg
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DIST="$HERE/../dist"
APP="$DIST/DiffEdit.app"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$HERE/../../diffedit/__init__.py")
DMG="$DIST/DiffEdit-$VERSION-macos-$(uname -m).dmg"
[ -d "$APP" ] || { echo "make_dmg.sh: $APP not found; run python3 packaging/build.py first" >&2; exit 1; }

# 1. Sign every binary inside the bundle, then the bundle, with the hardened runtime.
#    torch and numpy need JIT / unsigned executable memory and library loading: see entitlements.plist.
IDENTITY="${MACOS_SIGN_IDENTITY:--}"
find "$APP/Contents" -type f \( -name "*.so" -o -name "*.dylib" -o -perm -111 \) -print0 |
    xargs -0 codesign --force --timestamp --options runtime --entitlements "$HERE/entitlements.plist" \
        --sign "$IDENTITY"
codesign --force --timestamp --options runtime --entitlements "$HERE/entitlements.plist" --sign "$IDENTITY" "$APP"
codesign --verify --deep --strict --verbose=2 "$APP"

# 2. The disk image: the app and a link to /Applications.
STAGE=$(mktemp -d)
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "DiffEdit $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
rm -rf "$STAGE"
[ "$IDENTITY" = "-" ] || codesign --force --timestamp --sign "$IDENTITY" "$DMG"

# 3. Notarize and staple (only with a Developer ID identity).
if [ "$IDENTITY" != "-" ]; then
    if [ -n "${NOTARY_PROFILE:-}" ]; then
        xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
    else
        xcrun notarytool submit "$DMG" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
            --password "$APPLE_APP_PASSWORD" --wait
    fi
    xcrun stapler staple "$DMG"
    spctl --assess --type open --context context:primary-signature --verbose "$DMG"
else
    echo "make_dmg.sh: ad-hoc signed only (MACOS_SIGN_IDENTITY unset): Gatekeeper will warn on other Macs"
fi
echo "wrote $DMG"
