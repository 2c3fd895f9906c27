// HubSpot's official Node client (@hubspot/api-client) against `ferry sandbox`'s HubSpot emulator:
// the calls ferry's HubSpot connector makes, parsed into the SDK's typed models.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@hubspot/api-client";
import { startSandbox, thrown } from "./lib/sandbox.mjs";

const SOURCE_ID = "ferry_source_id";

describe("hubspot: @hubspot/api-client", () => {
  let sb;
  let hs;
  before(async () => {
    sb = await startSandbox("hubspot", { records: 250 });
    // No client-side limiter (its default pacing would hide the emulator's burst limit) and no
    // retries, so every answer reaches the test as the emulator sent it.
    hs = new Client({ accessToken: sb.env.HUBSPOT_TOKEN, basePath: sb.url, numberOfApiCallRetries: 0 });
  });
  after(() => sb?.stop());

  test("lists contacts and companies page by page to the end, as many as were seeded", async () => {
    for (const [api, expected, limit] of [
      [hs.crm.contacts.basicApi, sb.seeded.contacts, 100],
      [hs.crm.companies.basicApi, sb.seeded.companies, 20],
    ]) {
      const ids = new Set();
      let after;
      let pages = 0;
      do {
        const page = await api.getPage(limit, after, undefined, undefined, undefined, false);
        pages += 1;
        for (const r of page.results) {
          assert.equal(typeof r.id, "string");
          assert.ok(r.createdAt instanceof Date && !Number.isNaN(r.createdAt.getTime()));
          assert.ok(r.updatedAt instanceof Date && !Number.isNaN(r.updatedAt.getTime()));
          assert.equal(r.archived, false);
          ids.add(r.id);
        }
        after = page.paging?.next?.after;
      } while (after);
      assert.equal(ids.size, expected);
      assert.ok(pages > 1, "more than one page");
    }
    // The SDK's own paging helper walks the same cursors.
    const all = await hs.crm.contacts.getAll(100, undefined, ["email", "hs_email_optout"]);
    assert.equal(all.length, sb.seeded.contacts);
  });

  test("a search with no filters reports the total", async () => {
    const res = await hs.crm.contacts.searchApi.doSearch({ filterGroups: [], limit: 1, properties: ["email"] });
    assert.equal(res.total, sb.seeded.contacts);
    assert.equal(res.results.length, 1);
  });

  test("the source-id property is created unique, then upserted in a batch with per-record results", async () => {
    for (const object of ["contacts", "companies"]) {
      const existing = await hs.crm.properties.coreApi.getAll(object);
      if (existing.results.some((p) => p.name === SOURCE_ID)) continue;
      const prop = await hs.crm.properties.coreApi.create(object, {
        name: SOURCE_ID,
        label: "Ferry source id",
        type: "string",
        fieldType: "text",
        groupName: object === "contacts" ? "contactinformation" : "companyinformation",
        hasUniqueValue: true,
      });
      assert.equal(prop.name, SOURCE_ID);
      assert.equal(prop.hasUniqueValue, true);
      // The connector's `prepare` reads it back by name.
      const read = await hs.crm.properties.coreApi.getByName(object, SOURCE_ID);
      assert.equal(read.hasUniqueValue, true);
      assert.equal(read.type, "string");
    }
    const company = await hs.crm.companies.batchApi.upsert({
      inputs: [{ id: "sdk-co-1", idProperty: SOURCE_ID, properties: { name: "Sdk Co", domain: "sdk-co.example.com" } }],
    });
    assert.equal(company.results.length, 1);
    assert.equal(company.results[0]._new, true);
    const companyId = company.results[0].id;

    const inputs = [
      { id: "sdk-1", idProperty: SOURCE_ID, objectWriteTraceId: "0", properties: { email: "ada@sdk.example.com", firstname: "Ada", lastname: "Lovelace" } },
      { id: "sdk-2", idProperty: SOURCE_ID, objectWriteTraceId: "1", properties: { email: "not an email", lastname: "Broken" } },
      { id: "sdk-3", idProperty: SOURCE_ID, objectWriteTraceId: "2", properties: { email: "grace@sdk.example.com", lastname: "Hopper" } },
    ];
    const res = await hs.crm.contacts.batchApi.upsert({ inputs });
    // 207: the SDK parses the multi-status body into the same typed response, errors included.
    assert.equal(res.status, "COMPLETE");
    assert.equal(res.results.length, 2);
    assert.ok(res.results.every((r) => r._new === true));
    assert.equal(res.numErrors, 1);
    assert.equal(res.errors.length, 1);
    assert.equal(res.errors[0].category, "VALIDATION_ERROR");
    assert.deepEqual(res.errors[0].context.objectWriteTraceId, ["1"]);
    assert.ok(res.startedAt instanceof Date && res.completedAt instanceof Date);

    // Upserting the same source id again updates the record instead of creating one.
    const again = await hs.crm.contacts.batchApi.upsert({
      inputs: [{ id: "sdk-1", idProperty: SOURCE_ID, properties: { jobtitle: "Analyst" } }],
    });
    assert.equal(again.results[0]._new, false);
    const adaId = again.results[0].id;

    // Read back by HubSpot id and by the source id.
    const byId = await hs.crm.contacts.basicApi.getById(adaId, ["email", "jobtitle", SOURCE_ID]);
    assert.equal(byId.properties.email, "ada@sdk.example.com");
    assert.equal(byId.properties.jobtitle, "Analyst");
    assert.equal(byId.properties[SOURCE_ID], "sdk-1");
    const bySource = await hs.crm.contacts.batchApi.read({
      idProperty: SOURCE_ID,
      properties: ["email", SOURCE_ID],
      propertiesWithHistory: [],
      inputs: [{ id: "sdk-1" }, { id: "sdk-3" }],
    });
    assert.deepEqual(bySource.results.map((r) => r.properties[SOURCE_ID]).sort(), ["sdk-1", "sdk-3"]);
    const missing = await hs.crm.contacts.batchApi.read({
      idProperty: SOURCE_ID,
      properties: ["email"],
      propertiesWithHistory: [],
      inputs: [{ id: "sdk-1" }, { id: "no-such-id" }],
    });
    assert.equal(missing.results.length, 1);
    assert.equal(missing.errors[0].category, "OBJECT_NOT_FOUND");

    // Contact → company, the primary association (type 1), read back through v4.
    const created = await hs.crm.associations.v4.batchApi.create("contacts", "companies", {
      inputs: [{ _from: { id: adaId }, to: { id: companyId }, types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 1 }] }],
    });
    assert.equal(created.results.length, 1);
    assert.equal(String(created.results[0].toObjectId), companyId);
    const read = await hs.crm.associations.v4.batchApi.getPage("contacts", "companies", { inputs: [{ id: adaId }] });
    const to = read.results[0].to;
    assert.equal(String(to[0].toObjectId), companyId);
    assert.ok(to[0].associationTypes.some((t) => t.typeId === 1));
  });

  test("a bad token is the SDK's ApiException with 401 INVALID_AUTHENTICATION", async () => {
    const bad = new Client({ accessToken: "not-the-token", basePath: sb.url });
    const e = await thrown(() => bad.crm.contacts.basicApi.getPage(10));
    assert.equal(e.constructor.name, "ApiException");
    assert.equal(e.code, 401);
    assert.equal(e.body.category, "INVALID_AUTHENTICATION");
    assert.equal(e.body.status, "error");
    assert.match(e.body.correlationId, /^[0-9a-f-]{36}$/);
  });

  test("an invalid record is the SDK's ApiException with 400 VALIDATION_ERROR", async () => {
    // Without objectWriteTraceId one bad input fails the whole batch create.
    const e = await thrown(() =>
      hs.crm.contacts.batchApi.create({ inputs: [{ properties: { email: "nope", lastname: "X" }, associations: [] }] }),
    );
    assert.equal(e.constructor.name, "ApiException");
    assert.equal(e.code, 400);
    assert.equal(e.body.category, "VALIDATION_ERROR");
    assert.ok(e.body.errors.some((x) => x.code === "INVALID_EMAIL"));
    // hs_email_optout is read-only through the CRM API.
    const ro = await thrown(() =>
      hs.crm.contacts.basicApi.create({ properties: { email: "ro@sdk.example.com", hs_email_optout: "true" }, associations: [] }),
    );
    assert.equal(ro.code, 400);
    assert.ok(ro.body.errors.some((x) => x.code === "READ_ONLY_VALUE"));
  });

  test("the properties API lists the seeded custom properties and industry's options", async () => {
    const companies = await hs.crm.properties.coreApi.getAll("companies", false);
    const byName = new Map(companies.results.map((p) => [p.name, p]));
    for (const [name, type, fieldType] of [
      ["region", "string", "text"],
      ["seats", "number", "number"],
      ["tier", "enumeration", "select"],
    ]) {
      const p = byName.get(name);
      assert.ok(p, `companies.${name} is listed`);
      assert.equal(p.type, type);
      assert.equal(p.fieldType, fieldType);
      assert.equal(p.hubspotDefined, false);
      assert.equal(p.modificationMetadata.readOnlyValue, false);
    }
    assert.deepEqual(
      byName.get("tier").options.map((o) => [o.value, o.label]),
      [["gold", "Gold"], ["silver", "Silver"], ["bronze", "Bronze"]],
    );
    const industry = byName.get("industry");
    assert.equal(industry.type, "enumeration");
    assert.ok(industry.options.some((o) => o.value === "COMPUTER_SOFTWARE" && o.label === "Computer Software"));
    assert.equal(byName.get("hs_object_id").modificationMetadata.readOnlyValue, true);

    const contacts = await hs.crm.properties.coreApi.getAll("contacts");
    const names = contacts.results.map((p) => p.name);
    assert.ok(names.includes("favourite_colour") && names.includes("loyalty_points"));
    assert.equal((await hs.crm.properties.coreApi.getByName("contacts", "loyalty_points")).type, "number");

    // Seeded values come when asked for by name, Tier as its internal value.
    const page = await hs.crm.companies.basicApi.getPage(100, undefined, ["region", "seats", "tier"]);
    const tiers = page.results.map((c) => c.properties.tier).filter((t) => t != null);
    assert.ok(tiers.length > 0, "seeded tiers");
    assert.ok(tiers.every((t) => ["gold", "silver", "bronze"].includes(t)));
    assert.ok(page.results.some((c) => /^\d+$/.test(c.properties.seats ?? "")));
    const plain = await hs.crm.companies.basicApi.getPage(5);
    assert.equal(plain.results[0].properties.tier, undefined);
  });

  test("a created enumeration property takes its options, and refuses a value outside them", async () => {
    const created = await hs.crm.properties.coreApi.create("companies", {
      name: "sdk_band",
      label: "SDK band",
      type: "enumeration",
      fieldType: "select",
      groupName: "companyinformation",
      options: [
        { label: "Small", value: "small", displayOrder: 0, hidden: false },
        { label: "Large", value: "large", displayOrder: 1, hidden: false },
      ],
    });
    assert.equal(created.name, "sdk_band");
    assert.equal(created.hubspotDefined, false);
    assert.ok(created.createdAt instanceof Date);
    assert.deepEqual(created.options.map((o) => o.label), ["Small", "Large"]);
    const read = await hs.crm.properties.coreApi.getByName("companies", "sdk_band");
    assert.equal(read.options.length, 2);

    const co = await hs.crm.companies.basicApi.create({ properties: { name: "Band Co", sdk_band: "large", tier: "gold", seats: "12" }, associations: [] });
    const back = await hs.crm.companies.basicApi.getById(co.id, ["sdk_band", "tier", "seats"]);
    assert.equal(back.properties.sdk_band, "large");
    assert.equal(back.properties.tier, "gold");
    assert.equal(back.properties.seats, "12");

    for (const properties of [{ name: "X", tier: "Gold" }, { name: "X", sdk_band: "medium" }]) {
      const e = await thrown(() => hs.crm.companies.basicApi.create({ properties, associations: [] }));
      assert.equal(e.code, 400);
      assert.ok(e.body.errors.some((x) => x.code === "INVALID_OPTION"), JSON.stringify(e.body));
    }
    const unknown = await thrown(() => hs.crm.companies.basicApi.create({ properties: { name: "X", shoe_size: "9" }, associations: [] }));
    assert.equal(unknown.code, 400);
    assert.ok(unknown.body.errors.some((x) => x.code === "PROPERTY_DOESNT_EXIST"));
    const dup = await thrown(() =>
      hs.crm.properties.coreApi.create("companies", { name: "sdk_band", label: "Again", type: "string", fieldType: "text", groupName: "companyinformation" }),
    );
    assert.equal(dup.code, 409);
  });

  test("consent: an unsubscribe-all shows as hs_email_optout, and seeded opt-outs read as true", async () => {
    const all = await hs.crm.contacts.getAll(100, undefined, ["email", "hs_email_optout"]);
    const optedOut = all.filter((c) => c.properties.hs_email_optout === "true");
    assert.ok(optedOut.length > 0, "the seed has opted-out contacts");
    assert.ok(all.every((c) => ["true", "false"].includes(c.properties.hs_email_optout ?? "false")));

    // SDK 13 has no v4 communication-preferences API; its generic apiRequest sends the call
    // ferry's connector makes, with the client's auth.
    const up = await hs.crm.contacts.batchApi.upsert({
      inputs: [{ id: "sdk-optout", idProperty: SOURCE_ID, properties: { email: "optout@sdk.example.com", lastname: "Out" } }],
    });
    const id = up.results[0].id;
    const res = await hs.apiRequest({
      method: "POST",
      path: "/communication-preferences/v4/statuses/batch/unsubscribe-all?channel=EMAIL",
      body: { inputs: ["optout@sdk.example.com"] },
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.results[0].statuses.every((s) => s.status === "NOT_SUBSCRIBED"), true);
    const back = await hs.crm.contacts.basicApi.getById(id, ["hs_email_optout"]);
    assert.equal(back.properties.hs_email_optout, "true");
  });

  test("the burst limit is a 429 ApiException with HubSpot's body and rate-limit headers", async () => {
    // The emulator's own 10-second window (100 requests on a Free/Starter private app).
    let limited;
    for (let i = 0; i < 150 && !limited; i++) {
      try {
        await hs.crm.companies.basicApi.getPage(1);
      } catch (e) {
        limited = e;
      }
    }
    assert.ok(limited, "a 429 within 150 requests");
    assert.equal(limited.constructor.name, "ApiException");
    assert.equal(limited.code, 429);
    assert.equal(limited.body.errorType, "RATE_LIMIT");
    assert.equal(limited.body.policyName, "TEN_SECONDLY_ROLLING");
    assert.equal(limited.headers["x-hubspot-ratelimit-interval-milliseconds"], "10000");
    assert.equal(limited.headers["x-hubspot-ratelimit-remaining"], "0");
    assert.ok(Number(limited.headers["x-hubspot-ratelimit-max"]) > 0);
    assert.equal(limited.headers["retry-after"], undefined);
  });
});

describe("hubspot: owners, deal pipelines, deals, notes and their associations", () => {
  let sb;
  let hs;
  before(async () => {
    sb = await startSandbox("hubspot", { records: 240 });
    hs = new Client({ accessToken: sb.env.HUBSPOT_TOKEN, basePath: sb.url, numberOfApiCallRetries: 0 });
  });
  after(() => sb?.stop());

  test("owners page with after, filter by email, and list deactivated users as archived", async () => {
    const first = await hs.crm.owners.ownersApi.getPage(undefined, undefined, 4, false);
    assert.equal(first.results.length, 4);
    assert.ok(first.paging?.next?.after, "a next page");
    const second = await hs.crm.owners.ownersApi.getPage(undefined, first.paging.next.after, 4, false);
    const active = [...first.results, ...second.results];
    assert.equal(new Set(active.map((o) => o.id)).size, active.length);
    for (const o of active) {
      assert.equal(typeof o.id, "string");
      assert.equal(o.type, "PERSON");
      assert.equal(o.archived, false);
      assert.equal(typeof o.userId, "number");
      assert.ok(o.createdAt instanceof Date && o.updatedAt instanceof Date);
    }
    const ben = await hs.crm.owners.ownersApi.getPage("ben.okafor@ferry-demo.example");
    assert.equal(ben.results.length, 1);
    assert.equal(ben.results[0].firstName, "Ben");
    const byId = await hs.crm.owners.ownersApi.getById(Number(ben.results[0].id));
    assert.equal(byId.email, "ben.okafor@ferry-demo.example");
    const byUser = await hs.crm.owners.ownersApi.getById(ben.results[0].userId, "userId");
    assert.equal(byUser.id, ben.results[0].id);
    const archived = await hs.crm.owners.ownersApi.getPage(undefined, undefined, 100, true);
    assert.ok(archived.results.length > 0);
    for (const o of archived.results) {
      assert.equal(o.archived, true);
      assert.equal(o.userId ?? null, null, "an archived owner's userId is null");
      assert.equal(typeof o.userIdIncludingInactive, "number");
    }
    const e = await thrown(() => hs.crm.owners.ownersApi.getById(1));
    assert.equal(e.code, 404);
  });

  test("deal pipelines: the default pipeline's stage ids, custom numeric ids, probability and isClosed", async () => {
    const all = await hs.crm.pipelines.pipelinesApi.getAll("deals");
    assert.ok(all.results.length >= 2);
    const sales = all.results.find((p) => p.id === "default");
    assert.ok(sales, "the default pipeline");
    assert.ok(sales.createdAt instanceof Date);
    const first = sales.stages[0];
    assert.equal(first.id, "appointmentscheduled");
    assert.equal(first.metadata.isClosed, "false");
    assert.ok(Number(first.metadata.probability) > 0 && Number(first.metadata.probability) < 1);
    const won = sales.stages.find((s) => s.id === "closedwon");
    assert.deepEqual([won.metadata.isClosed, won.metadata.probability], ["true", "1.0"]);
    const custom = all.results.find((p) => p.id !== "default");
    assert.match(custom.id, /^\d+$/);
    assert.ok(custom.stages.every((s) => /^\d+$/.test(s.id)));
    const one = await hs.crm.pipelines.pipelinesApi.getById("deals", custom.id);
    assert.equal(one.label, custom.label);
    const stages = await hs.crm.pipelines.pipelineStagesApi.getAll("deals", custom.id);
    assert.equal(stages.results.length, custom.stages.length);
    const e = await thrown(() => hs.crm.pipelines.pipelinesApi.getById("deals", "no-such-pipeline"));
    assert.equal(e.code, 404);
  });

  test("deals list page by page with stage ids, and are created, updated, upserted, searched and archived", async () => {
    const ids = new Set();
    let after;
    let pages = 0;
    do {
      const page = await hs.crm.deals.basicApi.getPage(25, after, ["dealname", "dealstage", "pipeline", "hubspot_owner_id", "hs_is_closed_won"]);
      pages += 1;
      for (const d of page.results) {
        ids.add(d.id);
        assert.ok(d.properties.dealname);
        assert.ok(d.properties.dealstage && d.properties.pipeline);
      }
      after = page.paging?.next?.after;
    } while (after);
    // The sandbox reports companies and contacts; the seed makes a quarter as many deals.
    assert.equal(ids.size, Math.floor(sb.seeded.contacts / 4));
    assert.ok(pages > 1);

    const [ana] = (await hs.crm.owners.ownersApi.getPage("ana.garcia@ferry-demo.example")).results;
    const created = await hs.crm.deals.basicApi.create({
      properties: { dealname: "SDK deal", dealstage: "contractsent", amount: "2500.5", deal_currency_code: "EUR", hubspot_owner_id: ana.id, closedate: "2026-03-31" },
      associations: [],
    });
    assert.equal(created.properties.pipeline, "default");
    assert.equal(created.properties.amount, "2500.5");
    assert.equal(created.properties.hubspot_owner_id, ana.id);
    assert.equal(created.properties.hs_is_closed, "false");
    const updated = await hs.crm.deals.basicApi.update(created.id, { properties: { dealstage: "closedwon" } });
    assert.equal(updated.properties.hs_is_closed_won, "true");
    const back = await hs.crm.deals.basicApi.getById(created.id, ["dealstage", "deal_currency_code"]);
    assert.equal(back.properties.dealstage, "closedwon");
    assert.equal(back.properties.deal_currency_code, "EUR");

    for (const properties of [
      { dealname: "Label, not id", dealstage: "Closed Won" },
      { dealname: "Yen", dealstage: "closedwon", deal_currency_code: "JPY" },
      { dealname: "Nobody", dealstage: "closedwon", hubspot_owner_id: "1" },
      { dealstage: "closedwon" },
    ]) {
      const e = await thrown(() => hs.crm.deals.basicApi.create({ properties, associations: [] }));
      assert.equal(e.code, 400, JSON.stringify(properties));
      assert.equal(e.body.category, "VALIDATION_ERROR");
    }
    const yen = await thrown(() => hs.crm.deals.basicApi.create({ properties: { dealname: "Yen", dealstage: "closedwon", deal_currency_code: "JPY" }, associations: [] }));
    assert.ok(yen.body.message.includes("INVALID_OPTION") && yen.body.message.includes("deal_currency_code"));

    const props = await hs.crm.properties.coreApi.getAll("deals");
    if (!props.results.some((p) => p.name === SOURCE_ID)) {
      await hs.crm.properties.coreApi.create("deals", {
        name: SOURCE_ID, label: "Ferry source id", type: "string", fieldType: "text", groupName: "dealinformation", hasUniqueValue: true,
      });
    }
    const stage = props.results.find((p) => p.name === "dealstage");
    assert.ok(stage.options.some((o) => o.value === "closedwon" && o.label === "Closed Won"));
    const up = await hs.crm.deals.batchApi.upsert({
      inputs: [
        { id: "sdk-deal-1", idProperty: SOURCE_ID, objectWriteTraceId: "0", properties: { dealname: "Upserted", dealstage: "qualifiedtobuy" } },
        { id: "sdk-deal-2", idProperty: SOURCE_ID, objectWriteTraceId: "1", properties: { dealname: "Bad stage", dealstage: "nope" } },
      ],
    });
    assert.equal(up.results.length, 1);
    assert.equal(up.results[0]._new, true);
    assert.equal(up.errors.length, 1);
    assert.deepEqual(up.errors[0].context.objectWriteTraceId, ["1"]);
    const again = await hs.crm.deals.batchApi.upsert({ inputs: [{ id: "sdk-deal-1", idProperty: SOURCE_ID, properties: { amount: "99" } }] });
    assert.equal(again.results[0]._new, false);
    assert.equal(again.results[0].id, up.results[0].id);

    const found = await hs.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "dealstage", operator: "EQ", value: "closedwon" }] }],
      properties: ["dealname"],
      limit: 100,
    });
    assert.ok(found.total >= 1);
    assert.ok(found.results.some((d) => d.id === created.id));

    await hs.crm.deals.basicApi.archive(created.id);
    const gone = await thrown(() => hs.crm.deals.basicApi.getById(created.id));
    assert.equal(gone.code, 404);
  });

  test("deal ↔ contact and deal ↔ company associations through v4, and notes on deals, contacts and companies", async () => {
    const deals = await hs.crm.deals.basicApi.getPage(1);
    const dealId = deals.results[0].id;
    const contacts = await hs.crm.associations.v4.basicApi.getPage("deals", dealId, "contacts");
    assert.equal(contacts.results.length, 5, "the first seeded deal has five contacts");
    assert.ok(contacts.results.every((r) => r.associationTypes.some((t) => t.typeId === 3)));
    const batch = await hs.crm.associations.v4.batchApi.getPage("deals", "contacts", { inputs: [{ id: dealId }] });
    assert.equal(batch.results[0].to.length, 5);

    const company = (await hs.crm.companies.basicApi.getPage(1)).results[0].id;
    const contact = (await hs.crm.contacts.basicApi.getPage(1)).results[0].id;
    const deal = await hs.crm.deals.basicApi.create({
      properties: { dealname: "Linked", dealstage: "appointmentscheduled" },
      associations: [
        { to: { id: company }, types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 5 }] },
        { to: { id: contact }, types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 3 }] },
      ],
    });
    const companies = await hs.crm.associations.v4.basicApi.getPage("deals", deal.id, "companies");
    assert.equal(String(companies.results[0].toObjectId), company);
    assert.deepEqual(companies.results[0].associationTypes.map((t) => t.typeId).sort((a, b) => a - b), [5, 341]);
    assert.equal(companies.results[0].associationTypes.find((t) => t.typeId === 5).label, "Primary");

    const body = "<p>Rappel : envoyer le devis révisé &amp; 見積書</p>";
    const note = await hs.crm.objects.notes.basicApi.create({
      properties: { hs_timestamp: "2025-01-15T09:30:00.000Z", hs_note_body: body },
      associations: [
        { to: { id: deal.id }, types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 214 }] },
        { to: { id: contact }, types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 202 }] },
      ],
    });
    const read = await hs.crm.objects.notes.basicApi.getById(note.id, ["hs_note_body", "hs_timestamp"]);
    assert.equal(read.properties.hs_note_body, body);
    assert.equal(read.properties.hs_timestamp, "2025-01-15T09:30:00.000Z");
    await hs.crm.associations.v4.batchApi.create("notes", "companies", {
      inputs: [{ _from: { id: note.id }, to: { id: company }, types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: 190 }] }],
    });
    for (const [to, id] of [["deals", deal.id], ["contacts", contact], ["companies", company]]) {
      const res = await hs.crm.associations.v4.basicApi.getPage("notes", note.id, to);
      assert.ok(res.results.some((r) => String(r.toObjectId) === id), to);
    }
    // Single-pair writes: the default association, a labelled one, and its removal.
    const other = (await hs.crm.contacts.basicApi.getPage(2)).results[1].id;
    const made = await hs.crm.associations.v4.basicApi.createDefault("deals", deal.id, "contacts", other);
    assert.equal(made.results[0].associationSpec.associationTypeId, 3);
    const labelled = await hs.crm.associations.v4.basicApi.create("notes", note.id, "contacts", other, [
      { associationCategory: "HUBSPOT_DEFINED", associationTypeId: 202 },
    ]);
    assert.equal(String(labelled.toObjectId), other);
    await hs.crm.associations.v4.basicApi.archive("deals", deal.id, "contacts", other);
    const left = await hs.crm.associations.v4.basicApi.getPage("deals", deal.id, "contacts");
    assert.deepEqual(left.results.map((r) => String(r.toObjectId)), [contact]);

    const notes = await hs.crm.objects.notes.basicApi.getPage(100, undefined, ["hs_note_body"]);
    assert.ok(notes.results.length > 0);
    const tooLong = await thrown(() =>
      hs.crm.objects.notes.basicApi.create({ properties: { hs_timestamp: "1736933400000", hs_note_body: "x".repeat(65537) }, associations: [] }),
    );
    assert.equal(tooLong.code, 400);
    assert.ok(tooLong.body.errors.some((x) => x.code === "VALUE_TOO_LONG"));
  });
});

describe("hubspot: injected 429s (ferry sandbox --throttle)", () => {
  test("an injected 429 is the SDK's ApiException with HubSpot's rate-limit body", async () => {
    const sb = await startSandbox("hubspot", { records: 10, flags: ["--throttle", "hubspot=2", "--retry-after", "1"] });
    try {
      const hs = new Client({ accessToken: sb.env.HUBSPOT_TOKEN, basePath: sb.url });
      const errors = [];
      for (let i = 0; i < 4; i++) {
        try {
          await hs.crm.contacts.basicApi.getPage(5);
        } catch (e) {
          errors.push(e);
        }
      }
      assert.equal(errors.length, 2);
      for (const e of errors) {
        assert.equal(e.code, 429);
        assert.equal(e.body.errorType, "RATE_LIMIT");
        assert.equal(e.headers["retry-after"], "1");
      }
    } finally {
      await sb.stop();
    }
  });
});
