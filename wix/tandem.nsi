; Tandem's Windows installer (NSIS 3, built on Linux by `makensis`: scripts/windows-test.sh
; builds it and installs it silently under wine in CI). amd64 only.
;
;   makensis -DVERSION=0.1.0 -DBIN=path\to\dir-with-tandem.exe -DOUT=Tandem-0.1.0-setup.exe wix/tandem.nsi
;
; Installs tandem.exe (the command line and the headless service) and, when BIN holds it,
; the tray app tandem-desktop.exe (Start menu shortcut), into %ProgramFiles%\Tandem, with an
; uninstaller in "Apps & features". The optional section "Windows service" registers the
; service for a settings file: %ProgramData%\Tandem\tandem.toml, or the one given as
; /CONFIG=FILE, and starts it. Silent installs: `Tandem-setup.exe /S` (app only),
; `Tandem-setup.exe /S /SERVICE /CONFIG=C:\path\tandem.toml` (with the service).
; Uninstalling stops and removes the service; settings, state and logs stay.

Unicode true
Target amd64-unicode
!include "FileFunc.nsh"
!include "LogicLib.nsh"
!include "Sections.nsh"
!include "x64.nsh"

!ifndef VERSION
  !define VERSION "0.1.0"
!endif
!ifndef BIN
  !error "pass -DBIN=the folder holding tandem.exe"
!endif
!ifndef OUT
  !define OUT "Tandem-${VERSION}-setup.exe"
!endif

Name "Tandem ${VERSION}"
OutFile "${OUT}"
InstallDir "$PROGRAMFILES64\Tandem"
RequestExecutionLevel admin
ShowInstDetails show
!define UNINST "Software\Microsoft\Windows\CurrentVersion\Uninstall\Tandem"

Var Config

Section "Tandem (required)" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  File "${BIN}\tandem.exe"
  !if /FileExists "${BIN}\tandem-desktop.exe"
    File "${BIN}\tandem-desktop.exe"
    CreateShortCut "$SMPROGRAMS\Tandem.lnk" "$INSTDIR\tandem-desktop.exe"
  !endif
  WriteUninstaller "$INSTDIR\uninstall.exe"
  SetRegView 64
  WriteRegStr HKLM "${UNINST}" "DisplayName" "Tandem"
  WriteRegStr HKLM "${UNINST}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST}" "Publisher" "Tandem"
  WriteRegStr HKLM "${UNINST}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST}" "NoRepair" 1
SectionEnd

Section /o "Windows service" SecService
  ${IfNot} ${FileExists} "$Config"
    DetailPrint "No settings file at $Config: the service is not registered."
    DetailPrint "Write one, then run: tandem service install --config $Config"
    MessageBox MB_ICONEXCLAMATION "No settings file at $Config: the service was not registered. Write one, then run 'tandem service install --config $Config'." /SD IDOK
    Return
  ${EndIf}
  ; A service left by an earlier version is replaced.
  nsExec::ExecToLog '"$INSTDIR\tandem.exe" service uninstall'
  Pop $0
  nsExec::ExecToLog '"$INSTDIR\tandem.exe" service install --config "$Config"'
  Pop $0
  ${If} $0 != 0
    MessageBox MB_ICONSTOP "Registering the service failed (exit $0): see the details." /SD IDOK
    SetErrorLevel 1
    Return
  ${EndIf}
  nsExec::ExecToLog '"$INSTDIR\tandem.exe" service start'
  Pop $0
SectionEnd

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "Tandem needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
  ; %ProgramData%: the machine's settings, not one user's.
  SetShellVarContext all
  StrCpy $Config "$APPDATA\Tandem\tandem.toml"
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/CONFIG=" $R1
  ${IfNot} ${Errors}
    StrCpy $Config $R1
  ${EndIf}
  ClearErrors
  ${GetOptions} $R0 "/SERVICE" $R1
  ${IfNot} ${Errors}
    !insertmacro SelectSection ${SecService}
  ${EndIf}
FunctionEnd

Section "Uninstall"
  SetRegView 64
  nsExec::ExecToLog '"$INSTDIR\tandem.exe" service uninstall'
  Pop $0
  Delete "$INSTDIR\tandem.exe"
  Delete "$INSTDIR\tandem-desktop.exe"
  Delete "$SMPROGRAMS\Tandem.lnk"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKLM "${UNINST}"
SectionEnd
