; Inno Setup script for DiffEdit (Inno Setup 6). Build the app first on Windows:
;   py packaging\build.py            -> packaging\dist\DiffEdit\
; then:  iscc /DAppVersion=0.1.0 packaging\windows\diffedit.iss   -> packaging\dist\DiffEdit-0.1.0-setup.exe
; See packaging/README.md (Windows) for signing with signtool.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "DiffEdit"
; DiffEditw.exe: the windowed launcher (no console); DiffEdit.exe: the console one, for the command line
#define AppExe "DiffEditw.exe"
#define DistDir "..\dist\DiffEdit"

[Setup]
AppId={{6C3E0C8A-5B1E-4C59-9C7A-0D1F0E5DAE11}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=DiffEdit
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
UninstallDisplayIcon={app}\{#AppExe}
OutputDir=..\dist
OutputBaseFilename=DiffEdit-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\diffedit.ico
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesAssociations=yes
PrivilegesRequiredOverridesAllowed=dialog
WizardStyle=modern
LicenseFile=..\..\resources\fonts\LICENSE-DejaVu.txt

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "assocora"; Description: "Open OpenRaster (.ora) documents with DiffEdit"; GroupDescription: "File associations:"

[Files]
Source: "{#DistDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; Parameters: "gui"
Name: "{group}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\DiffEdit.exe"" --selftest"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Parameters: "gui"; Tasks: desktopicon

[Registry]
; .ora -> DiffEdit.ora (per user or per machine, as the install mode chose); removed by the uninstaller
Root: HKA; Subkey: "Software\Classes\.ora"; ValueType: string; ValueName: ""; ValueData: "DiffEdit.ora"; Flags: uninsdeletevalue; Tasks: assocora
Root: HKA; Subkey: "Software\Classes\.ora\OpenWithProgids"; ValueType: string; ValueName: "DiffEdit.ora"; ValueData: ""; Flags: uninsdeletevalue; Tasks: assocora
Root: HKA; Subkey: "Software\Classes\DiffEdit.ora"; ValueType: string; ValueName: ""; ValueData: "OpenRaster image"; Flags: uninsdeletekey; Tasks: assocora
Root: HKA; Subkey: "Software\Classes\DiffEdit.ora\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"; Tasks: assocora
Root: HKA; Subkey: "Software\Classes\DiffEdit.ora\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" gui ""%1"""; Tasks: assocora
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".ora"; ValueData: ""; Flags: uninsdeletekey

[Run]
Filename: "{app}\{#AppExe}"; Parameters: "gui"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; files Python writes next to the app at run time; the user's settings and plugins (in %APPDATA%) are kept
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
