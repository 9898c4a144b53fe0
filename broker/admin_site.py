"""The admin site: a second factor (TOTP, django-otp) outside DEBUG, and every sign-in attempt audited.

`BrokerAdminConfig.default_site` (broker/apps.py) makes this the `admin.site` every `admin.site.register(...)` and
`@admin.register` already use. Whether the second factor is required is read per request from
`IDBROKER_ADMIN_2FA` (default: on unless DEBUG), so the site object never changes class at run time.

Sign-ins are recorded as AdminSignIn rows (audit/models.py) with an outcome: `ok` (with the user's numeric id),
`failed` (wrong password, not staff, or a wrong token) or `no_second_factor` (right password, but no token given or
no TOTP device enrolled). Auditors read them in the admin; they are not audit entries, so nothing about them reaches
the public transparency log (issue 10): when and how often operators sign in is nobody else's business. Failures
still carry no id, and never the username, the password or the token. Attempts are paced per client address
(ADMIN_LOGIN_LIMIT a minute).
"""

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpResponse
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from audit.services import admin_signin_record
from broker import ratelimit

ADMIN_LOGIN_LIMIT = 10  # attempts per client address per minute


def second_factor_required() -> bool:
    return settings.IDBROKER_ADMIN_2FA


class OneDeviceOTPAuthenticationForm(OTPAdminAuthenticationForm):
    """django-otp's admin login form, with the device preselected when the user has exactly one.

    django-otp asks the user to pick a device before it checks a token (so a wrong guess cannot throttle unrelated
    devices); `admin_totp_enroll` keeps one device per operator, so password and token go in one step.
    """

    def clean_otp(self, user):
        if user is not None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True))
            if len(devices) == 1:
                self.cleaned_data["otp_device"] = devices[0].persistent_id
        return super().clean_otp(user)


class BrokerAdminSite(OTPAdminSite):
    """django-otp's OTPAdminSite, falling back to the plain admin only when IDBROKER_ADMIN_2FA is off."""

    def __init__(self, name="admin"):
        super().__init__(name)

    @property
    def login_form(self):
        return OneDeviceOTPAuthenticationForm if second_factor_required() else AdminAuthenticationForm

    @property
    def login_template(self):
        return OTPAdminSite.login_template if second_factor_required() else None

    def has_permission(self, request):
        if second_factor_required():
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)

    def login(self, request, extra_context=None):
        if request.method == "POST":
            # Every attempt is a permanent record: pace guessing (and record flooding) per client.
            allowed, retry_after = ratelimit.hit(
                f"admin-login:{ratelimit.client_key(request)}", limit=ADMIN_LOGIN_LIMIT, window=60
            )
            if not allowed:
                response = HttpResponse("Too many sign-in attempts. Wait a minute.", status=429)
                response["Retry-After"] = str(retry_after)
                return response
        response = super().login(request, extra_context)
        if request.method == "POST":
            _audit_signin(request, response)
        return response


def _audit_signin(request, response) -> None:
    """An AdminSignIn with an outcome; the user's id only on success (an id on a failure would tell whoever reads
    the record which usernames exist and whose password was right)."""
    if response.status_code == 302 and request.user.is_authenticated:
        admin_signin_record(outcome="ok", user_id=request.user.pk)
        return
    form = (getattr(response, "context_data", None) or {}).get("form")
    user = form.get_user() if form is not None else None
    if user is None:  # wrong password, unknown or inactive user
        admin_signin_record(outcome="failed")
        return
    password_only = user.is_active and user.is_staff and second_factor_required()
    no_token = not request.POST.get("otp_token") or not _has_device(user)
    admin_signin_record(outcome="no_second_factor" if password_only and no_token else "failed")


def _has_device(user) -> bool:
    return any(True for _ in devices_for_user(user, confirmed=True))
