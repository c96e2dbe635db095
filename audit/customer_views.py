"""The customer's own page: a private link, no login (issue 4, checklist H: GDPR Art. 22, EU AI Act Art. 86).

The token in the URL is checked for its signature and expiry before any database query; a forged, tampered,
expired, revoked or unknown token gets a plain 404 that says nothing more. The page shows the decision in
plain words, the reasons in the customer's wording, what would change the outcome, the credit-score
disclosure, the customer's rights, the notice as a PDF, and a form (no JavaScript, CSRF-protected) to ask for
a human review or send more information. English and Spanish: ``?lang=es``, else Accept-Language, else the
language of the application. Every string of the page is in ``STRINGS``, in both languages.
"""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.http import require_GET, require_http_methods

from audit.adverse import (
    LANGUAGES,
    applicant_language,
    customer_link_decision,
    customer_link_resolve,
    customer_page_data,
    customer_request_create,
    notice_current,
)
from audit.models import CustomerLink, CustomerRequest
from audit.notices import Language

MESSAGE_MAX = 5000

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your credit decision",
        "language": "Language",
        "private": "This page is private to you. Please do not share its address.",
        "decision_heading": "Our decision",
        "replaced": "We reviewed your application again and on {on} replaced our earlier decision of {earlier_on}. "
                    "This page shows our current decision.",
        "replaced_notice": "The notice we prepared for the earlier decision (reference {reference}) is withdrawn.",
        "outcome_denied": "We were unable to approve your application for the {product}, which you submitted on "
                          "{applied}. We made this decision on {decided}.",
        "outcome_approved": "Your application for the {product}, which you submitted on {applied}, was approved on "
                            "{decided}.",
        "outcome_referred": "Your application for the {product}, which you submitted on {applied}, is being reviewed "
                            "by one of our loan officers. We will contact you when the review is complete.",
        "by_model": "This decision was made by our automated credit scoring system, using the information in your "
                    "application and your credit report.",
        "by_officer": "This decision was made by one of our loan officers.",
        "reasons_heading": "Why we made this decision",
        "reasons_model": "These are the principal reasons for our decision, the most important first:",
        "reasons_officer": "These are the principal reasons the loan officer relied on, the most important first:",
        "recourse_heading": "What could change the outcome",
        "recourse_intro": "Our scoring system found that these changes, together, would have led to the approval of "
                          "this application:",
        "recourse_note": "This is not an offer or a promise of credit: a new application is assessed on its own "
                         "merits.",
        "recourse_none": "Our scoring system found no change within your control that would, on its own, have led "
                         "to approval. If your circumstances change, you are welcome to apply again.",
        "score_heading": "Your credit score",
        "score_value": "Your credit score",
        "score_date": "Date of the score",
        "score_source": "Source of the score",
        "key_factors": "Key factors that adversely affected your credit score",
        "key_factors_note": "These factors concern your credit score; they are not the reasons for our decision, "
                            "which are listed above.",
        "agency_heading": "Consumer reporting agency",
        "name": "Name",
        "address": "Address",
        "telephone": "Telephone",
        "rights_heading": "Your rights",
        "ecoa_heading": "Equal Credit Opportunity Act",
        "ecoa_english": "",
        "fcra_heading": "Your credit report",
        "fcra_rights": "You have the right to a free copy of your credit report from the consumer reporting agency "
                       "named above if you ask for it within 60 days of receiving our notice, and the right to "
                       "dispute with the agency any information in it that is inaccurate or incomplete.",
        "review_heading": "A person's review and an explanation",
        "review_rights": "You have the right to ask for a person to review this decision, to give your point of "
                         "view and to contest the decision (EU General Data Protection Regulation, Article 22), and "
                         "to receive a clear and meaningful explanation of the role the automated system played and "
                         "of the main elements of the decision (EU AI Act, Article 86). This page is that "
                         "explanation; use the form below to ask for a review.",
        "notice_heading": "Your notice",
        "notice_text": "The written notice of our decision, as we sent it to you:",
        "notice_link": "Download the notice (PDF)",
        "reference": "Reference",
        "form_heading": "Ask for a review or send us more information",
        "kind_legend": "What would you like to do?",
        "kind_review": "Ask for a person to review the decision",
        "kind_information": "Send more information about my application",
        "message_label": "Your message (optional when you ask for a review)",
        "message_hint": "Up to 5,000 characters. Please do not include passwords or full account numbers.",
        "submit": "Send",
        "errors_heading": "Please correct the following:",
        "error_kind": "Choose what you would like to do.",
        "error_message_required": "Please write the information you would like to send.",
        "error_message_long": "Your message is longer than 5,000 characters.",
        "sent": "Thank you. We have received your request. A loan officer will look at it and contact you.",
        "contact_heading": "Contact us",
    },
    "es": {
        "title": "Su decisión de crédito",
        "language": "Idioma",
        "private": "Esta página es privada. No comparta su dirección.",
        "decision_heading": "Nuestra decisión",
        "replaced": "Volvimos a revisar su solicitud y el {on} reemplazamos nuestra decisión anterior del "
                    "{earlier_on}. Esta página muestra nuestra decisión actual.",
        "replaced_notice": "El aviso que preparamos para la decisión anterior (referencia {reference}) queda "
                           "retirado.",
        "outcome_denied": "No pudimos aprobar su solicitud de {product}, que presentó el {applied}. Tomamos esta "
                          "decisión el {decided}.",
        "outcome_approved": "Su solicitud de {product}, que presentó el {applied}, fue aprobada el {decided}.",
        "outcome_referred": "Uno de nuestros oficiales de préstamos está revisando su solicitud de {product}, que "
                            "presentó el {applied}. Nos comunicaremos con usted cuando termine la revisión.",
        "by_model": "Esta decisión la tomó nuestro sistema automatizado de calificación de crédito, con la "
                    "información de su solicitud y de su informe de crédito.",
        "by_officer": "Esta decisión la tomó uno de nuestros oficiales de préstamos.",
        "reasons_heading": "Por qué tomamos esta decisión",
        "reasons_model": "Estas son las razones principales de nuestra decisión, de la más importante a la menos "
                         "importante:",
        "reasons_officer": "Estas son las razones principales en las que se basó el oficial de préstamos, de la más "
                           "importante a la menos importante:",
        "recourse_heading": "Qué podría cambiar el resultado",
        "recourse_intro": "Nuestro sistema de calificación determinó que estos cambios, en conjunto, habrían llevado "
                          "a la aprobación de esta solicitud:",
        "recourse_note": "Esto no es una oferta ni una promesa de crédito: cada nueva solicitud se evalúa por sus "
                         "propios méritos.",
        "recourse_none": "Nuestro sistema de calificación no encontró ningún cambio a su alcance que, por sí solo, "
                         "hubiera llevado a la aprobación. Si sus circunstancias cambian, puede volver a presentar "
                         "una solicitud.",
        "score_heading": "Su puntaje de crédito",
        "score_value": "Su puntaje de crédito",
        "score_date": "Fecha del puntaje",
        "score_source": "Fuente del puntaje",
        "key_factors": "Factores clave que afectaron negativamente su puntaje de crédito",
        "key_factors_note": "Estos factores se refieren a su puntaje de crédito; no son las razones de nuestra "
                            "decisión, que se indican más arriba.",
        "agency_heading": "Agencia de informes de crédito",
        "name": "Nombre",
        "address": "Dirección",
        "telephone": "Teléfono",
        "rights_heading": "Sus derechos",
        "ecoa_heading": "Ley de Igualdad de Oportunidades de Crédito",
        "ecoa_english": "Texto oficial en inglés (English text of the notice):",
        "fcra_heading": "Su informe de crédito",
        "fcra_rights": "Tiene derecho a obtener una copia gratuita de su informe de crédito de la agencia de informes "
                       "de crédito indicada arriba si la solicita dentro de los 60 días siguientes a la recepción de "
                       "nuestro aviso, y a disputar ante la agencia cualquier información inexacta o incompleta que "
                       "contenga.",
        "review_heading": "Revisión por una persona y explicación",
        "review_rights": "Tiene derecho a pedir que una persona revise esta decisión, a expresar su punto de vista y "
                         "a impugnar la decisión (Reglamento General de Protección de Datos de la UE, artículo 22), y "
                         "a recibir una explicación clara y significativa del papel que desempeñó el sistema "
                         "automatizado y de los elementos principales de la decisión (Reglamento de Inteligencia "
                         "Artificial de la UE, artículo 86). Esta página es esa explicación; use el formulario de "
                         "abajo para pedir una revisión.",
        "notice_heading": "Su aviso",
        "notice_text": "El aviso escrito de nuestra decisión, tal como se lo enviamos:",
        "notice_link": "Descargar el aviso (PDF)",
        "reference": "Referencia",
        "form_heading": "Pida una revisión o envíenos más información",
        "kind_legend": "¿Qué desea hacer?",
        "kind_review": "Pedir que una persona revise la decisión",
        "kind_information": "Enviar más información sobre mi solicitud",
        "message_label": "Su mensaje (opcional si pide una revisión)",
        "message_hint": "Hasta 5000 caracteres. No incluya contraseñas ni números de cuenta completos.",
        "submit": "Enviar",
        "errors_heading": "Corrija lo siguiente:",
        "error_kind": "Elija qué desea hacer.",
        "error_message_required": "Escriba la información que desea enviar.",
        "error_message_long": "Su mensaje tiene más de 5000 caracteres.",
        "sent": "Gracias. Hemos recibido su solicitud. Un oficial de préstamos la revisará y se comunicará con usted.",
        "contact_heading": "Comuníquese con nosotros",
    },
}
LANGUAGE_NAMES = {"en": "English", "es": "Español"}


class CustomerRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=CustomerRequest.Kind.choices, required=False)
    message = forms.CharField(required=False, strip=True)

    def problems(self, strings: dict[str, str]) -> dict[str, str]:
        """What is wrong, in the page's language (validation only: the template renders the fields)."""
        if not self.is_valid():
            return {"kind": strings["error_kind"]}
        found = {}
        kind, message = self.cleaned_data["kind"], self.cleaned_data["message"]
        if kind not in CustomerRequest.Kind.values:
            found["kind"] = strings["error_kind"]
        if kind == CustomerRequest.Kind.INFORMATION and not message:
            found["message"] = strings["error_message_required"]
        if len(message) > MESSAGE_MAX:
            found["message"] = strings["error_message_long"]
        return found


def _not_found() -> HttpResponse:
    # Plain and identical for every failure: nothing tells a forged token from an expired or unknown one.
    return HttpResponseNotFound("Not found\n", content_type="text/plain; charset=utf-8")


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store, private"
    # The token is in the URL: never send it to another origin. same-origin (not no-referrer), because with
    # no-referrer browsers post the review form with "Origin: null" and Django's CSRF check refuses it.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _language(request: HttpRequest, link: CustomerLink) -> Language:
    asked = request.GET.get("lang", "")
    if asked in LANGUAGES:
        return "es" if asked == "es" else "en"
    for code, _quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        primary = code.split("-")[0].lower()
        if primary in LANGUAGES:
            return "es" if primary == "es" else "en"
    return applicant_language(link.decision.application)


def _page_url(token: str, language: str, **extra: str) -> str:
    return f"{reverse('audit:customer-page', args=[token])}?{urlencode({'lang': language, **extra})}"


@require_http_methods(["GET", "POST"])
def customer_page(request: HttpRequest, token: str) -> HttpResponse:
    link = customer_link_resolve(token=token)
    if link is None:
        return _not_found()
    language = _language(request, link)
    strings = STRINGS[language]
    form = CustomerRequestForm(request.POST or None)
    problems: dict[str, str] = {}
    if request.method == "POST":
        problems = form.problems(strings)
        if not problems:
            customer_request_create(link=link, kind=form.cleaned_data["kind"], message=form.cleaned_data["message"],
                                    language=language)
            # Post/redirect/get: a reload does not send the request twice.
            return _private(HttpResponseRedirect(_page_url(token, language, sent="1"), status=303))
    other = "es" if language == "en" else "en"
    page = customer_page_data(link=link, language=language)
    context = {
        "lang": language, "s": strings, "page": page,
        "outcome_text": strings[f"outcome_{page['outcome']}"].format(
            product=page["product_name"], applied=page["applied_on"], decided=page["decided_on"]),
        "other_language": {"code": other, "name": LANGUAGE_NAMES[other], "url": _page_url(token, other)},
        "form_action": _page_url(token, language),
        "pdf_url": reverse("audit:customer-notice-pdf", args=[token]) if page["has_pdf"] else "",
        "sent": request.GET.get("sent") == "1" and request.method == "GET",
        "problems": problems,
        "kind": form.data.get("kind", "") if request.method == "POST" else "",
        "message": form.data.get("message", "") if request.method == "POST" else "",
        "message_max": MESSAGE_MAX,
        "replaced_text": strings["replaced"].format(**page["replaced"]) if page["replaced"] else "",
        "replaced_notice_text": strings["replaced_notice"].format(reference=page["replaced"]["notice_reference"])
        if page["replaced"] and page["replaced"]["notice_reference"] else "",
    }
    response = render(request, "customer/page.html", context, status=400 if problems else 200)
    response["Content-Language"] = language
    return _private(response)


@require_GET
def customer_notice_pdf(request: HttpRequest, token: str) -> HttpResponse:
    link = customer_link_resolve(token=token)
    if link is None:
        return _not_found()
    notice = notice_current(decision=customer_link_decision(link=link))
    if notice is None:
        return _not_found()
    response = HttpResponse(bytes(notice.pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="notice-{notice.reference}.pdf"'
    return _private(response)
