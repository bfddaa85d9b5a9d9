"""Texts of the login, consent and account pages: Simplified Chinese (default) and English."""

from __future__ import annotations

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"

MESSAGES: dict[str, tuple[str, str]] = {
    "site.name": ("统一身份认证平台", "Unified Identity Platform"),
    "site.switch": ("English", "简体中文"),
    "site.skip": ("跳到主要内容", "Skip to main content"),
    "site.footer": ("本页面不使用任何第三方资源。", "This page loads no third-party resources."),
    "login.title": ("登录", "Sign in"),
    "login.for_client": ("登录以继续访问 {client}", "Sign in to continue to {client}"),
    "login.name": ("身份证号 / 手机号 / 电子邮箱", "ID number / mobile number / e-mail"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Sign in"),
    "login.failed": ("登录名或密码不正确。", "The login name or password is not correct."),
    "login.locked": ("尝试次数过多，请在 {minutes} 分钟后重试。", "Too many attempts. Try again in {minutes} minute(s)."),
    "login.or": ("或者", "or"),
    "login.cert": ("使用数字证书登录", "Sign in with a digital certificate"),
    "login.cert_hint": ("需要在浏览器中安装本平台签发的个人证书。", "Needs a personal certificate from this platform installed in your browser."),
    "login.cert_failed": ("未能使用证书登录：{reason}", "Certificate sign-in failed: {reason}"),
    "login.expired": ("登录请求已过期或无效，请返回应用重新发起登录。", "This sign-in request has expired or is not valid. Go back to the application and start again."),
    "otp.title": ("二次验证", "Second step"),
    "otp.stepup": ("{client} 需要更高的认证级别，请完成二次验证。", "{client} needs a higher level of assurance: complete a second step."),
    "otp.totp": ("身份验证器应用中的 6 位动态码", "6-digit code from your authenticator app"),
    "otp.recovery": ("或输入一个恢复码", "or enter a recovery code"),
    "otp.recovery_label": ("恢复码", "Recovery code"),
    "otp.sms_send": ("发送短信验证码", "Text me a code"),
    "otp.sms_sent": ("验证码已发送至 {phone}。", "A code was sent to {phone}."),
    "otp.sms_label": ("短信验证码", "Code from the text message"),
    "otp.submit": ("验证", "Verify"),
    "otp.failed": ("验证码不正确或已过期。", "The code is not correct or has expired."),
    "otp.none": ("您的账户尚未设置二次验证方式，请使用数字证书登录。", "Your account has no second factor yet: sign in with a certificate."),
    "consent.title": ("授权确认", "Allow access"),
    "consent.intro": ("{client} 请求访问您的以下信息：", "{client} asks for access to:"),
    "consent.allow": ("同意", "Allow"),
    "consent.deny": ("拒绝", "Deny"),
    "scope.openid": ("您的账户标识", "Your account identifier"),
    "scope.profile": ("姓名", "Your name"),
    "scope.email": ("电子邮箱", "Your e-mail address"),
    "scope.phone": ("手机号码", "Your mobile number"),
    "scope.offline_access": ("在您离线时保持访问", "Access while you are not signed in"),
    "error.title": ("出错了", "Something went wrong"),
    "error.back": ("请返回您来自的应用。", "Please go back to the application you came from."),
    "error.invalid_client": ("未知或已停用的应用。", "Unknown or disabled application."),
    "error.invalid_request": ("请求无效：{detail}", "Invalid request: {detail}"),
    "logout.title": ("退出登录", "Sign out"),
    "logout.confirm": ("要退出统一身份认证平台吗？您在所有部门系统中的登录都将结束。", "Sign out of the platform? You will be signed out of every department system."),
    "logout.submit": ("退出", "Sign out"),
    "logout.cancel": ("取消", "Cancel"),
    "logout.done": ("您已安全退出。", "You are signed out."),
    "account.title": ("我的账户", "My account"),
    "account.signed_in_as": ("当前登录：{name}（{id}）", "Signed in as {name} ({id})"),
    "account.level": ("认证级别：{acr}", "Assurance level: {acr}"),
    "account.sessions": ("登录会话", "Sessions"),
    "account.session_row": ("{created} 登录，来自 {ip}", "Signed in {created} from {ip}"),
    "account.this_session": ("（当前会话）", "(this session)"),
    "account.end": ("结束", "End"),
    "account.password": ("修改密码", "Change password"),
    "account.current_password": ("当前密码", "Current password"),
    "account.new_password": ("新密码（至少 8 位）", "New password (at least 8 characters)"),
    "account.save": ("保存", "Save"),
    "account.password_changed": ("密码已修改。", "Your password was changed."),
    "account.otp": ("二次验证", "Two-step verification"),
    "account.otp_on": ("已启用身份验证器应用，剩余恢复码 {left} 个。", "Authenticator app on; {left} recovery code(s) left."),
    "account.otp_off": ("尚未启用。", "Not set up."),
    "account.otp_setup": ("设置身份验证器应用", "Set up an authenticator app"),
    "account.otp_remove": ("停用", "Turn off"),
    "account.otp_scan": ("用身份验证器应用扫描二维码，或手动输入密钥：", "Scan the QR code with your authenticator app, or type the key:"),
    "account.otp_qr_alt": ("身份验证器二维码", "Authenticator QR code"),
    "account.otp_confirm": ("输入应用显示的 6 位码以完成设置", "Enter the 6-digit code the app shows to finish"),
    "account.recovery_title": ("恢复码", "Recovery codes"),
    "account.recovery_intro": ("请妥善保存以下恢复码，每个只能使用一次，仅显示这一次。", "Keep these recovery codes safe. Each works once; they are shown only now."),
    "account.recovery_new": ("生成新的恢复码", "New recovery codes"),
    "account.logout": ("退出登录", "Sign out"),
    "account.error": ("操作未完成：{detail}", "Not done: {detail}"),
    "account.continue": ("继续", "Continue"),
}


def translate(lang: str, key: str, **values: object) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**values) if values else text


def pick(requested: str | None) -> str | None:
    """A supported language from a ``ui_locales`` / ``lang`` value, or None."""
    for tag in (requested or "").replace(",", " ").split():
        tag = tag.split(";")[0].strip()
        if tag.lower().startswith("en"):
            return "en"
        if tag.lower().startswith("zh"):
            return "zh-CN"
    return None
