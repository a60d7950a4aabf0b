"""The fixed inputs of bench/rewrite_eval.py: what people select and ask Hearth to rewrite.

Six kinds, written for this benchmark: informal messages, text with typos, long
paragraphs, lists, text in other languages, and text carrying code or numbers that a
rewrite must keep. ``lang`` is the language the output must stay in.
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    id: str
    kind: str  # informal | typos | long | list | foreign | code
    lang: str  # en fr de es it pt nl
    text: str


CASES = [
    # -- informal messages ----------------------------------------------------------------
    Case("report", "informal", "en", "hey can u send me the report by tmrw thx"),
    Case("late", "informal", "en",
         "running late, traffic is insane. start without me and save me a seat pls"),
    Case("lunch", "informal", "en",
         "yo are we still on for lunch friday? i was thinking that new thai place on 5th"),
    Case("deploy", "informal", "en",
         "ok so the deploy broke again lol. can someone look at it before the standup, "
         "i'm stuck in another meeting"),
    Case("thanks", "informal", "en",
         "thx so much for covering my shift yesterday, owe u big time. coffee on me next week"),
    Case("landlord", "informal", "en",
         "hi, the heating in my flat stopped working again since sunday, its really cold. "
         "can you send someone this week?"),
    # -- typos and grammar ----------------------------------------------------------------
    Case("cat", "typos", "en", "i has a cat and she like to sleeps on the windowsil all day"),
    Case("meeting", "typos", "en",
         "Their going to announce the results at the meeting, weather we are ready or not."),
    Case("receive", "typos", "en",
         "I recieved you're email and I will definately reply untill friday."),
    Case("apply", "typos", "en",
         "Me and him has applied for the job last week but nobody have called us back yet."),
    Case("paper", "typos", "en",
         "The the results of the experiment was suprising, becuase the control group "
         "performed better then the test group."),
    Case("trip", "typos", "en",
         "We was planning a trip to the mountins but the wheather forcast is realy bad."),
    # -- long paragraphs ------------------------------------------------------------------
    Case("onboarding", "long", "en",
         "Over the last quarter our team has been working on improving the onboarding "
         "experience for new customers. We interviewed twenty customers who signed up in "
         "the spring and found that most of them struggled with the same two steps: "
         "connecting their bank account and inviting their colleagues. Several people "
         "told us they gave up and came back days later, and a few never came back at "
         "all. Based on this, we redesigned both steps, added clearer instructions, and "
         "made it possible to skip the invitation step and return to it later. Early "
         "numbers suggest that the share of customers who finish onboarding on their "
         "first day has gone up noticeably, although we want another month of data "
         "before drawing firm conclusions."),
    Case("garden", "long", "en",
         "When we moved into the house the garden was mostly gravel and a few tired "
         "shrubs. The first summer we did almost nothing except pull weeds and watch "
         "where the sun fell at different times of the day. In the autumn we dug two "
         "beds along the south wall, mixed in a lot of compost, and planted garlic and "
         "some spring bulbs. The next year we added tomatoes, beans and herbs, and put "
         "a small bench under the apple tree. It is still far from finished, but now it "
         "is the place where we drink our coffee every morning when the weather allows."),
    Case("incident", "long", "en",
         "On Tuesday evening the payment service stopped accepting new transactions for "
         "about forty minutes. The cause was a configuration change that lowered the "
         "connection limit of the database pool, which had been tested on the staging "
         "environment but not under production load. Once requests started queuing, the "
         "health checks failed and the load balancer removed healthy instances, which "
         "made the problem worse. The on-call engineer rolled the change back and the "
         "service recovered within a few minutes. We are adding a load test to the "
         "release checklist and changing the health checks so that a slow database no "
         "longer takes every instance out of rotation at once."),
    Case("library", "long", "en",
         "The town library has decided to extend its opening hours on weekdays after a "
         "survey showed that many residents could only visit in the evening. From next "
         "month, the main building will stay open until eight o'clock from Monday to "
         "Thursday. To make this possible without hiring more staff, the library will "
         "open an hour later in the morning, when it is usually quiet. The children's "
         "reading hour will move from Wednesday morning to Saturday afternoon so that "
         "working parents can attend with their children."),
    # -- lists ----------------------------------------------------------------------------
    Case("groceries", "list", "en",
         "things to get: milk, eggs (a dozen), bread, coffee beans, something for dinner "
         "tmrw, and dont forget the cat food"),
    Case("todo", "list", "en",
         "- finish the slides for monday\n- call the bank about the card\n"
         "- book dentist\n- reply to anna about the weekend\n- renew passport before june"),
    Case("packing", "list", "en",
         "For the trip we need: passports, chargers, the blue backpack, sunscreen, "
         "hiking boots, a first aid kit and some snacks for the train."),
    Case("steps", "list", "en",
         "1. unplug the router\n2. wait thirty seconds\n3. plug it back in\n"
         "4. if the light stays red call support"),
    # -- other languages ------------------------------------------------------------------
    Case("fr-message", "foreign", "fr",
         "salut, tu peux m'envoyer le rapport avant demain midi stp ? j'en ai besoin "
         "pour la réunion avec le client, merci !"),
    Case("fr-typos", "foreign", "fr",
         "Je suis allé au marché hier et j'ai acheter des pommes, du pain et un peu de "
         "fromage pour le dîner avec les enfants."),
    Case("de-message", "foreign", "de",
         "Hallo zusammen, ich bin morgen leider nicht im Büro, weil ich einen Arzttermin "
         "habe. Können wir das Meeting auf Donnerstag verschieben?"),
    Case("es-paragraph", "foreign", "es",
         "El proyecto va bien pero estamos un poco retrasados con la documentación. "
         "Creo que podemos terminar todo antes del viernes si nadie se pone enfermo y "
         "si el cliente no cambia otra vez los requisitos."),
    Case("it-message", "foreign", "it",
         "ciao, stasera non riesco a venire alla cena perché devo finire un lavoro per "
         "domani. ci vediamo sabato per il caffè?"),
    Case("pt-message", "foreign", "pt",
         "Olá, recebi a sua mensagem e vou verificar os documentos ainda hoje. Se "
         "houver algum problema, eu aviso você antes do fim do dia."),
    # -- code and numbers -----------------------------------------------------------------
    Case("invoice", "code", "en",
         "pls pay invoice 4471 for 1,250.00 EUR by 15 March, the account is "
         "DE89 3704 0044 0532 0130 00"),
    Case("bug", "code", "en",
         "the function `parse_date` crashes when the input is `2024-02-30`, it throws "
         "ValueError instead of returning None like the docs say"),
    Case("config", "code", "en",
         "set `max_connections = 50` in config.toml and restart, the default of 10 is "
         "way too low for the 3 workers we run now"),
    Case("recipe", "code", "en",
         "preheat oven to 180C, mix 250 g flour with 2 eggs and 100 ml milk, bake for "
         "35 minutes"),
    Case("stats", "code", "en",
         "revenue grew 12% to $4.2M in Q3, while costs rose only 3%, so margin went "
         "from 18% to 24%"),
    Case("command", "code", "en",
         "to clean up run `git branch --merged main | xargs git branch -d` but check the "
         "list first, it deletes 14 branches on my machine"),
]  # fmt: skip
