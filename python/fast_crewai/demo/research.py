"""A small offline research crew for the task-concurrency tests and the
``tasks`` benchmark: one researcher looks a company up with a tool (two LLM
calls: the tool call, then the answer), optionally a writer summarises.

Every word of the company names and cities is used once, so that the
scripted LLM, which keeps recalled memories that share a capitalised word
with the task, never mixes one company's facts into another's answer.

Import after :func:`~fast_crewai.demo.offline.offline_environment`: it
imports CrewAI.
"""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Memory, Process, Task
from crewai.tools import BaseTool, tool

from .offline import HashEmbedder
from .scripted_llm import ScriptedLLM

# (company, city)
COMPANIES = (
    ("Acme Robotics", "Lyon"),
    ("Borealis Foods", "Tromso"),
    ("Cobalt Mining", "Kiruna"),
    ("Dorado Shipping", "Valparaiso"),
    ("Ember Textiles", "Porto"),
    ("Fjord Energy", "Bergen"),
    ("Granite Software", "Aberdeen"),
    ("Harbor Pharma", "Basel"),
    ("Iris Optics", "Jena"),
    ("Juniper Farms", "Fresno"),
    ("Kestrel Aviation", "Toulouse"),
    ("Lumen Displays", "Hsinchu"),
    ("Meridian Bank", "Luxembourg"),
    ("Nimbus Cloud", "Dublin"),
    ("Onyx Materials", "Essen"),
    ("Pylon Construction", "Rotterdam"),
)
RESEARCH_TASK = "Research {company}: use the company facts tool and report every fact it returns."
SUMMARY_TASK = "Summarise {company} for the board."


def company_facts(company: str) -> list[str]:
    """The facts the tool knows about ``company`` (empty when unknown)."""
    for index, (name, city) in enumerate(COMPANIES):
        if name.lower() in company.lower():
            return [f"{name} employs {120 + 37 * index} people.", f"{name} is headquartered in {city}."]
    return []


def facts_tool(max_usage_count: int | None = None) -> BaseTool:
    """The ``company facts`` tool; its argument is free text naming a company."""

    @tool("company facts", max_usage_count=max_usage_count)
    def lookup(company: str) -> str:
        """Returns the known facts about a company, one per line."""
        return "\n".join(f"- {fact}" for fact in company_facts(company)) or "No facts found."

    return lookup


def inputs(count: int) -> list[dict[str, Any]]:
    """``kickoff_for_each`` inputs for the first ``count`` companies."""
    if not 0 < count <= len(COMPANIES):
        raise ValueError(f"count must be 1..{len(COMPANIES)}")
    return [{"company": name} for name, _ in COMPANIES[:count]]


def research_crew(
    llm: ScriptedLLM,
    *,
    summary: bool = False,
    memory: bool = False,
    max_usage_count: int | None = None,
    companies: tuple[str, ...] = (),
    hierarchical_manager: ScriptedLLM | None = None,
) -> Crew:
    """The crew. With ``companies`` it researches those, one asynchronous
    task each (all on the one researcher), before the last task; without,
    one research task whose company comes from the kickoff inputs. With
    ``hierarchical_manager`` a manager on that LLM delegates every task.

    With ``memory`` the crew has a memory (the scripted LLM analyses, the
    hashed embedder embeds) that ranks recalls by meaning alone: with
    CrewAI's default weights, recency and importance let records of other
    companies saved just before outrank this company's, so what a run of
    ``kickoff_for_each`` recalls would depend on which runs went before it."""
    researcher = Agent(
        role="Researcher",
        goal="Find the facts about companies",
        backstory="You look companies up and report facts exactly.",
        llm=llm,
        tools=[facts_tool(max_usage_count)],
        allow_delegation=False,
    )
    writer = Agent(
        role="Writer",
        goal="Summarise what the team found",
        backstory="You write short, factual summaries.",
        llm=llm,
        allow_delegation=False,
    )
    manager = hierarchical_manager is not None
    # A hierarchical crew's tasks go to its manager; theirs must not name an agent.
    tasks = [
        Task(
            description=RESEARCH_TASK.format(company=company),
            expected_output="The facts, one per line",
            agent=None if manager else researcher,
            async_execution=True,
        )
        for company in companies
    ]
    if not companies:
        tasks.append(
            Task(
                description=RESEARCH_TASK,
                expected_output="The facts, one per line",
                agent=None if manager else researcher,
            )
        )
    if summary or companies:
        company = "the companies researched" if companies else "{company}"
        tasks.append(
            Task(
                description=SUMMARY_TASK.format(company=company),
                expected_output="A short summary",
                agent=None if manager else writer,
            )
        )
    return Crew(
        agents=[researcher, writer],
        tasks=tasks,
        memory=Memory(llm=llm, embedder=HashEmbedder(), recency_weight=0.0, importance_weight=0.0, semantic_weight=1.0)
        if memory
        else False,
        process=Process.hierarchical if manager else Process.sequential,
        manager_llm=hierarchical_manager,
    )
