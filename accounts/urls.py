from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="account-home"),
    path("signin", views.signin, name="account-signin"),
    path("signin/options", views.signin_options, name="account-signin-options"),
    path("signin/finish", views.signin_finish, name="account-signin-finish"),
    path("passkeys/options", views.register_options, name="account-passkey-options"),
    path("passkeys", views.register, name="account-passkey-register"),
    path("passkeys/<int:passkey_id>/remove", views.remove_passkey, name="account-passkey-remove"),
    path("signout", views.signout, name="account-signout"),
    path("shares/<int:attestation_id>/revoke", views.revoke_share, name="account-share-revoke"),
    path("export", views.export, name="account-export"),
    path("delete", views.delete_everything, name="account-delete"),
]
